//! `--image FROM=TO` and `--image-mirror PREFIX` (shared by `slipway run` and `slipway plan`), and
//! how a plan says which image each job and service really uses, and why.

use anyhow::Context as _;
use clap::Args as ClapArgs;
use slipway_pipelines::plan::{ImageSource, Job};
use slipway_runner::image_map::ImageMap;

/// The flags that map images for one run.
#[derive(Debug, Clone, Default, ClapArgs)]
pub struct ImageArgs {
    /// Use another image instead of one the file names, `FROM=TO` (repeatable): `node:16=…`
    /// maps that tag; `node=registry.local/ci/node` maps every tag, keeping it unless TO names one.
    #[arg(long = "image", value_name = "FROM=TO")]
    pub image: Vec<String>,
    /// Pull every Docker Hub image no `--image` maps through this registry prefix (a pull-through
    /// mirror): `ruby:3` becomes `PREFIX/library/ruby:3`.
    #[arg(long = "image-mirror", value_name = "PREFIX")]
    pub image_mirror: Option<String>,
}

impl ImageArgs {
    /// The map the flags describe.
    pub fn map(&self) -> anyhow::Result<ImageMap> {
        let mut map = ImageMap::default();
        for spec in &self.image {
            let (from, to) = spec.split_once('=').with_context(|| {
                format!(
                    "--image takes FROM=TO (e.g. ruby:latest=registry.local/ci/ruby:3), not {spec}"
                )
            })?;
            map.add_rule(from, to, "--image")?;
        }
        if let Some(prefix) = &self.image_mirror {
            map.set_mirror(prefix, "--image-mirror")?;
        }
        Ok(map)
    }
}

/// The image line of a job in a plan: the image it really uses, and why.
pub fn describe_job_image(job: &Job, map: &ImageMap) -> String {
    let named = &job.image.name;
    let source = match job.image.source {
        ImageSource::File => "the file's image:",
        ImageSource::Language => "the language table",
    };
    let mapped = map.map(named);
    match mapped.why {
        None => format!("{named} (from {source})"),
        Some(why) => format!("{} ({source} names {named}; mapped by {why})", mapped.image),
    }
}

/// The image lines of a job's services that the map changes (`docker` has none).
pub fn describe_service_images(job: &Job, map: &ImageMap) -> Vec<String> {
    slipway_runner::addons::services(job)
        .iter()
        .filter_map(|name| {
            let spec = slipway_runner::services::default_spec(name)?;
            let image = slipway_runner::addons::service_image(&job.addons, name, &spec.image)
                .unwrap_or(spec.image);
            let mapped = map.map(&image);
            let why = mapped.why?;
            Some(format!(
                "service {name}: {} ({image} mapped by {why})",
                mapped.image
            ))
        })
        .collect()
}
