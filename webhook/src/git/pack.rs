//! Shallow packs: N generations of history written as one pack without deltas.

use super::GitError;
use flate2::Compression;
use flate2::write::ZlibEncoder;
use git2::{Oid, Repository};
use sha1::{Digest as _, Sha1};
use std::collections::{HashSet, VecDeque};
use std::io::Write as _;

/// Writes into `ws` one pack holding `depth` generations of commits from `tip` with their trees
/// and blobs; returns the commits at the cut whose parents were left out (the shallow boundary),
/// as `git fetch --depth` records them.
///
/// The pack stores every object whole (zlib, no deltas): libgit2's pack builder searches for
/// deltas, which took most of the checkout's time in the P5 benchmark for a pack a quarter
/// smaller; see `docs/operations.md`.
pub(super) fn write_shallow_pack(
    mirror: &Repository,
    tip: Oid,
    depth: u32,
    ws: &Repository,
) -> Result<Vec<Oid>, GitError> {
    let mut seen = HashSet::new();
    let mut objects = Vec::new();
    let mut queue = VecDeque::from([(tip, 1u32)]);
    let mut boundary = Vec::new();
    while let Some((id, generation)) = queue.pop_front() {
        if !seen.insert(id) {
            continue;
        }
        let c = mirror.find_commit(id)?;
        objects.push(id);
        collect_tree(mirror, c.tree_id(), &mut seen, &mut objects)?;
        if generation >= depth {
            if c.parent_count() > 0 {
                boundary.push(id);
            }
            continue;
        }
        queue.extend(c.parent_ids().map(|p| (p, generation + 1)));
    }
    let odb = mirror.odb()?;
    let ws_odb = ws.odb()?;
    let mut writer = ws_odb.packwriter()?;
    let mut hash = Sha1::new();
    let mut buf = Vec::with_capacity(1 << 16);
    buf.extend_from_slice(b"PACK");
    buf.extend_from_slice(&2u32.to_be_bytes());
    let count = u32::try_from(objects.len())
        .map_err(|_| git2::Error::from_str("too many objects for one pack"))?;
    buf.extend_from_slice(&count.to_be_bytes());
    for id in &objects {
        let obj = odb.read(*id)?;
        let kind: u8 = match obj.kind() {
            git2::ObjectType::Commit => 1,
            git2::ObjectType::Tree => 2,
            git2::ObjectType::Blob => 3,
            git2::ObjectType::Tag => 4,
            git2::ObjectType::Any => {
                return Err(git2::Error::from_str("unexpected object type").into());
            }
        };
        // Entry header: type and size, 4 bits then 7 per byte, high bit = more follows.
        let mut size = obj.len();
        let mut byte = (kind << 4) | (size & 0x0f) as u8;
        size >>= 4;
        while size > 0 {
            buf.push(byte | 0x80);
            byte = (size & 0x7f) as u8;
            size >>= 7;
        }
        buf.push(byte);
        let mut z = ZlibEncoder::new(&mut buf, Compression::default());
        z.write_all(obj.data())?;
        z.finish()?;
        if buf.len() >= 1 << 16 {
            hash.update(&buf);
            writer.write_all(&buf)?;
            buf.clear();
        }
    }
    hash.update(&buf);
    writer.write_all(&buf)?;
    writer.write_all(&hash.finalize())?;
    writer.commit()?;
    boundary.sort();
    Ok(boundary)
}

/// Adds `tree` and everything under it to `objects`, once each (a tree already seen is skipped
/// whole: same id, same contents). Submodule entries are commits of other repositories: left out.
fn collect_tree(
    repo: &Repository,
    tree: Oid,
    seen: &mut HashSet<Oid>,
    objects: &mut Vec<Oid>,
) -> Result<(), GitError> {
    if !seen.insert(tree) {
        return Ok(());
    }
    objects.push(tree);
    for entry in repo.find_tree(tree)?.iter() {
        match entry.kind() {
            Some(git2::ObjectType::Tree) => collect_tree(repo, entry.id(), seen, objects)?,
            Some(git2::ObjectType::Blob) if seen.insert(entry.id()) => objects.push(entry.id()),
            _ => {}
        }
    }
    Ok(())
}
