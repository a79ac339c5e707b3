//! A Ruby pipeline of any matrix size, for the build-size tests and the cap's benchmark (which
//! includes this file as a module of its own).

/// A Ruby file whose matrix is `rvm` (one line, line 2) × `env.jobs` (the `jobs:` key on line 4).
pub fn matrix(rubies: usize, envs: usize) -> String {
    let rvm: Vec<String> = (0..rubies).map(|i| format!("\"3.{i}\"")).collect();
    let mut yaml = format!("language: ruby\nrvm: [{}]\nenv:\n  jobs:\n", rvm.join(", "));
    for i in 0..envs {
        yaml.push_str(&format!("    - SHARD={i}\n"));
    }
    yaml.push_str("script: rake\n");
    yaml
}
