//! Lint of the deploy providers Slipway runs itself (`elasticbeanstalk`, `ecs`, `gke`,
//! `heroku`, `kubernetes`, `npm`, `packagecloud`, `pages`, `pypi`, `releases`, `rubygems`, `s3`,
//! `script`): the options `slipway-providers` reads are
//! known with their types and required options, and mistakes are reported with positions. Pinned
//! with an insta snapshot.

use slipway_pipelines::diagnostic::Diagnostic;
use slipway_pipelines::lint::lint;

fn human(diags: &[Diagnostic]) -> String {
    diags.iter().map(|d| format!("{d}\n")).collect()
}

/// Every option of the providers Slipway runs, each written the way its provider reads it.
const EVERY_OPTION: &str = "\
language: minimal
script: make test
deploy:
  - provider: elasticbeanstalk
    access_key_id: $AWS_ACCESS_KEY
    secret_access_key:
      secure: c2VjcmV0
    region: eu-west-1
    endpoint: http://127.0.0.1:5001
    app: {main: shop, staging: shop-staging}
    env: shop-prod
    bucket_name: shop-bundles
    bucket_path: releases
    zip_file: dist/bundle.zip
    label: v1
    description: release
    only_create_app_version: false
    wait_until_deployed: true
    wait_until_deployed_timeout: 900
    solution_stack: 64bit Amazon Linux 2023 v4.3.0 running Docker
    pin_images: true
    debug: false
  - provider: ecs
    access_key: $AWS_ACCESS_KEY
    secret_key: $AWS_SECRET_KEY
    region: us-west-1
    endpoint: http://127.0.0.1:5001
    cluster: prod
    service: shop
    task_definition: shop
    dockerrun: Dockerrun.aws.json
    family: shop
    container: web
    image: acme/web:$SHA
    images: {worker: acme/worker:$SHA}
    pin_images: false
    wait_until_deployed: true
    timeout: 300
    rollback: true
  - provider: gke
    project: shop-123
    zone: europe-west1-b
    region: europe-west1
    cluster: prod
    key_file: service-account.json
    namespace: shop
    manifests: [k8s, extra/job.yaml]
    images: {web/web: acme/web:$SHA}
    secrets:
      db:
        PASSWORD:
          secure: c2VjcmV0
    wait_until_deployed: true
    timeout: 600
  - provider: kubernetes
    kubeconfig: deploy/kubeconfig
    context: prod
    namespace: shop
    manifests: k8s
    images: {web: {web: acme/web:$SHA}}
    secrets: {}
    wait_until_deployed: false
    timeout: 120
  - provider: s3
    access_key_id: AKIDPLAIN
    secret_access_key: $AWS_SECRET_KEY
    region: us-east-1
    endpoint: http://127.0.0.1:5001
    bucket: shop-assets
    local_dir: public
    upload_dir: assets
    glob: '**/*.js'
    dot_match: true
    acl: public_read
    detect_encoding: true
    cache_control: ['no-cache: *.html', max-age=86400]
    expires: '2030-01-01 00:00:00 UTC'
    storage_class: STANDARD_IA
    server_side_encryption: true
    index_document_suffix: index.html
    default_text_charset: utf-8
    force_path_style: true
    max_threads: 8
    overwrite: false
    verbose: true
    edge: true
    cleanup: true
  - provider: releases
    api_key:
      secure: c2VjcmV0
    user: octo
    password:
      secure: c2VjcmV0
    repo: acme/shop
    file: [dist/*.tar.gz, dist/*.zip]
    file_glob: true
    overwrite: true
    draft: false
    name: Shop $TRAVIS_TAG
    prerelease: false
    release_number: '42'
    body: Notes
    tag_name: $TRAVIS_TAG
    target_commitish: main
    skip_cleanup: true
    on:
      tags: true
  - provider: releases
    token: $GITHUB_TOKEN
    release_notes_file: NOTES.md
  - provider: pages
    strategy: git
    github_token: $GITHUB_TOKEN
    repo: acme/shop.github.io
    target_branch: main
    local_dir: site
    fqdn: shop.example.org
    project_name: Shop
    email: bot@example.org
    name: Shop Bot
    github_url: github.example.org
    keep_history: true
    verbose: true
    allow_empty_commit: true
    commit_message: Publish %{git_sha}
    committer_from_gh: true
    deployment_file: false
  - provider: pypi
    user: __token__
    password:
      secure: c2VjcmV0
    server: https://test.pypi.invalid/legacy/
    distributions: sdist bdist_wheel
    docs_dir: docs
    skip_existing: true
    upload_docs: false
    twine_check: true
    remove_build_dir: true
    setuptools_version: '69.0'
    twine_version: '5.0'
    wheel_version: '0.42'
  - provider: npm
    api_key:
      secure: c2VjcmV0
    email: dev@example.org
    access: public
    registry: https://npm.example.org/
    src: packages/ui
    tag: next
    auth_method: token
  - provider: heroku
    strategy: api
    api_key:
      secure: c2VjcmV0
    app: {main: shop, staging: shop-staging}
    run: [rake db:migrate]
  - provider: heroku
    user:
      secure: c2VjcmV0
    password:
      secure: c2VjcmV0
    git: https://git.heroku.com/shop.git
  - provider: rubygems
    api_key:
      secure: c2VjcmV0
    gem: {main: shop, staging: shop-pre}
    gemspec: shop.gemspec
    gemspec_glob: '*.gemspec'
    host: https://gems.example.org
  - provider: rubygems
    user:
      secure: c2VjcmV0
    password:
      secure: c2VjcmV0
  - provider: packagecloud
    username: acme
    token:
      secure: c2VjcmV0
    repository: shop
    local_dir: dist
    dist: ubuntu/jammy
    package_glob: ['*.deb', '*.rpm']
    force: true
    connect_timeout: 60
    read_timeout: 60
    write_timeout: 180
  - provider: script
    script: ./notify.sh
    skip_cleanup: true
";

#[test]
fn every_option_of_the_providers_slipway_runs_is_known() {
    let diags = lint("every.yml", EVERY_OPTION.as_bytes());
    // Only the deprecation Travis reports too: `skip_cleanup` (dpl v2 uses `cleanup`).
    insta::assert_snapshot!("every_option_human", human(&diags));
}

/// Mistakes in the options of the providers Slipway runs.
const MISTAKES: &str = "\
language: minimal
script: make test
deploy:
  - provider: ecs
    cluster: prod
    service: shop
    rollback: sometimes
    timeout: soon
    taskdefinition: shop
  - provider: gke
    project: shop-123
    zone: europe-west1-b
    cluster: prod
    secrets: [db]
  - provider: kubernetes
    images: acme/web
    wait: true
  - provider: elasticbeanstalk
    env: shop-prod
    secret_access_key: plain-text-secret
  - provider: s3
    local_dir: public
    detect_encodng: true
    max_threads: many
  - provider: script
    on:
      branch: main
  - provider: releases
    api_key: plain-text-token
    file_glob: yes please
    draft: 2
  - provider: pages
    keep_histroy: true
  - provider: packagecloud
    token:
      secure: c2VjcmV0
";

#[test]
fn mistakes_in_deploy_options_are_named_with_positions() {
    let diags = lint("mistakes.yml", MISTAKES.as_bytes());
    insta::assert_snapshot!("mistakes_human", human(&diags));
}
