//! The binary's one shutdown signal: SIGTERM (what ECS and Kubernetes send) or Ctrl-C. Every
//! long-running command (`etl run`, `etl warehouse load --follow`) and the readiness probe wait
//! on this; each sees the signal.

/// Resolves when SIGTERM or Ctrl-C arrives. A signal that cannot be listened for is never
/// reported (the other one still is).
pub async fn requested() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
