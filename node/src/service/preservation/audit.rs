//! Audits: every file of every copy kept here is read again and checked against its BLAKE3 every
//! `[preservation] audit_secs`, at most `audit_mib_per_sec`. A file found damaged or missing is
//! removed and marked so: the copy is then incomplete, this node stays its holder (a copy begun
//! counts as held here), and the next look fetches the file again from the publisher or another
//! holder. The advert lists each copy with when its files were last checked.

use tracing::warn;

use super::{Preserver, now};
use crate::dataplane::audit::hash_file;
use crate::store::Store;

/// Most files checked in one look.
const FILES_PER_LOOK: usize = 256;

impl Preserver {
    /// Checks the files due for a check; whether any was checked (the advert then says so).
    pub(super) async fn audit(&self) -> bool {
        let (db, root) = (self.home.database(), self.dir());
        let before =
            now().saturating_sub(i64::try_from(self.config.audit_secs).unwrap_or(i64::MAX));
        let rate = self.config.audit_mib_per_sec.saturating_mul(1 << 20);
        let checked = tokio::task::spawn_blocking(move || {
            let mut store = Store::open(&db)?;
            let due = store.preserved_files_due(before, FILES_PER_LOOK)?;
            let checked = due.len();
            for mut f in due {
                let path = root
                    .join(f.publisher.to_string())
                    .join(&f.collection)
                    .join(&f.path);
                let found = hash_file(&path, rate);
                f.intact = found.as_ref().is_ok_and(|h| *h == f.blake3);
                f.checked_at = now();
                if !f.intact {
                    let why = match found {
                        Ok(_) => "its bytes no longer match its BLAKE3".to_owned(),
                        Err(e) => e.to_string(),
                    };
                    warn!(path = %path.display(), %why, "a preserved file is damaged or missing; it is removed and fetched again from another holder");
                    let _ = std::fs::remove_file(&path);
                }
                store.put_preserved_file(&f)?;
            }
            Ok::<_, crate::store::StoreError>(checked)
        })
        .await;
        match checked {
            Ok(Ok(n)) => n > 0,
            Ok(Err(e)) => {
                warn!(error = %e, "preserved files could not be audited; tried again at the next look");
                false
            }
            Err(e) => {
                warn!(error = %e, "preserved files could not be audited; tried again at the next look");
                false
            }
        }
    }
}
