//! Bounded polling.

use std::future::Future;
use std::time::Duration;

use crate::TestkitError;

/// Poll interval of [`eventually`].
const POLL: Duration = Duration::from_millis(50);

/// Calls `check` until it returns `Some`, at most `timeout` (polling every 50 ms); the error
/// names `what`.
pub async fn eventually<T, F, Fut>(
    what: &str,
    timeout: Duration,
    mut check: F,
) -> Result<T, TestkitError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return Ok(v);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(TestkitError::Timeout {
                what: what.to_owned(),
                timeout,
                seen: "condition never held".into(),
            });
        }
        tokio::time::sleep(POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn eventually_returns_the_value_or_times_out() {
        let n = AtomicU32::new(0);
        let v = eventually("third call", Duration::from_secs(5), || async {
            (n.fetch_add(1, Ordering::SeqCst) == 2).then_some(7)
        })
        .await
        .unwrap();
        assert_eq!(v, 7);
        let err = eventually("never", Duration::from_millis(120), || async { None::<()> })
            .await
            .unwrap_err();
        assert!(err.to_string().contains("never"), "{err}");
    }
}
