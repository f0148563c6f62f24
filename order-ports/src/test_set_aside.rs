//! A [`SetAside`](crate::SetAside) for this crate's own unit tests (the test-support crate's
//! `SetAsideLog` implements the library's trait, which unit tests see as a second copy).

/// A [`SetAside`](crate::SetAside) that keeps what it is given in memory (or, built with
/// [`SetAsideLog::failing`], refuses everything as an unavailable queue would).
#[derive(Debug, Default)]
pub struct SetAsideLog {
    fail: bool,
    records: std::sync::Mutex<Vec<crate::SetAsideRecord>>,
}

impl SetAsideLog {
    /// Every `set_aside` fails with `Unavailable`.
    pub fn failing() -> Self {
        Self {
            fail: true,
            records: std::sync::Mutex::default(),
        }
    }

    /// What was set aside, in order.
    pub fn records(&self) -> Vec<crate::SetAsideRecord> {
        self.records.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

#[async_trait::async_trait]
impl crate::SetAside for SetAsideLog {
    async fn set_aside(&self, record: &crate::SetAsideRecord) -> Result<(), crate::StoreError> {
        if self.fail {
            return Err(crate::StoreError::Unavailable(
                "stream failure queue unavailable".into(),
            ));
        }
        if let Ok(mut records) = self.records.lock() {
            records.push(record.clone());
        }
        Ok(())
    }
}
