use super::*;

/// A claim noted in `work`: its entry, its stop and its renewer's bell.
fn noted(
    work: &LocalWork,
    build: i64,
    held: Held,
) -> (Registered<'_>, CancellationToken, Arc<Notify>) {
    let (stop, check) = (CancellationToken::new(), Arc::new(Notify::new()));
    (
        work.register(build, held, stop.clone(), check.clone()),
        stop,
        check,
    )
}

/// True when `check` was rung since last asked.
fn rung(check: &Notify) -> bool {
    let mut bell = std::pin::pin!(check.notified());
    futures::FutureExt::now_or_never(bell.as_mut()).is_some()
}

#[test]
fn word_of_an_end_makes_only_the_claims_it_names_renew() {
    let work = LocalWork::default();
    let lease = |job_id, attempt| Held::Job(JobLease { job_id, attempt });
    let (_prep, prep_stop, prep) = noted(&work, 7, Held::Build(7));
    let (_job, job_stop, job) = noted(&work, 3, lease(30, 1));
    work.preparation_ended(30);
    work.job_ended(7);
    assert!(
        !rung(&prep) && !rung(&job),
        "build 30 and job 7 are not here"
    );
    work.preparation_ended(7);
    assert!(rung(&prep) && !rung(&job));
    work.job_ended(30);
    assert!(rung(&job) && !rung(&prep));
    // Word only asks the store: nothing is stopped by it.
    assert!(!prep_stop.is_cancelled() && !job_stop.is_cancelled());
}

#[test]
fn two_claims_of_one_build_here_are_told_apart() {
    let work = LocalWork::default();
    // The first claim was lost and is still stopping when the build is claimed again.
    let (first, first_stop, _) = noted(&work, 7, Held::Build(7));
    let (_second, second_stop, second) = noted(&work, 7, Held::Build(7));
    drop(first);
    work.preparation_ended(7);
    assert!(
        rung(&second),
        "the second claim still hears word of the build"
    );
    work.stop_builds(&[7]);
    assert!(
        second_stop.is_cancelled(),
        "and a cancel here still stops it"
    );
    assert!(!first_stop.is_cancelled(), "the first had left");
}
