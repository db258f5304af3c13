//! One cluster's transaction and the locks it holds: the cluster's, taken when it begins, and
//! its accounts', so that two runs never write the same cluster or account at once.

use sha2::{Digest, Sha256};
use sqlx::pool::PoolConnection;
use sqlx::{Any, Executor};

use crate::cache::Dialect;

use super::{Database, Error, LOCK_TIMEOUT};

impl Database {
    /// Begins the transaction in which one cluster's rows and checkpoint commit, holding the
    /// cluster's lock until it ends: a PostgreSQL advisory transaction lock, a MySQL named lock
    /// (released by [`ClusterTransaction::commit`], or by the server when the connection drops),
    /// or SQLite's write lock (`BEGIN IMMEDIATE`).
    pub async fn begin_cluster(&self, cluster: &str) -> Result<ClusterTransaction, Error> {
        let what = format!("locking cluster {cluster}");
        let mut conn = self.connection(what.clone()).await?;
        let lock_name = lock_name(cluster);
        let timeout = LOCK_TIMEOUT.as_secs();
        match self.dialect {
            Dialect::MySql => {
                let got: Option<i64> = sqlx::query_scalar("SELECT GET_LOCK(?, ?)")
                    .bind(&lock_name)
                    .bind(timeout as i64)
                    .fetch_one(&mut *conn)
                    .await
                    .map_err(|e| self.query_error(what.clone(), e))?;
                if got != Some(1) {
                    return Err(Error::LockTimeout {
                        url: self.display_url.clone(),
                        cluster: cluster.to_string(),
                        seconds: timeout,
                    });
                }
            }
            Dialect::Sqlite => {
                conn.execute(format!("PRAGMA busy_timeout = {}", timeout * 1000).as_str())
                    .await
                    .map_err(|e| self.query_error(what.clone(), e))?;
            }
            Dialect::Postgres => {
                conn.execute(format!("SET lock_timeout = '{timeout}s'").as_str())
                    .await
                    .map_err(|e| self.query_error(what.clone(), e))?;
            }
        }
        let begin: &[&str] = match self.dialect {
            Dialect::Sqlite => &["BEGIN IMMEDIATE"],
            // READ COMMITTED: InnoDB then locks the rows a statement touches, not the gaps
            // between them, so clusters indexed at once (each its own account's rows) do not
            // deadlock on each other's index ranges. Every row a cluster's transaction reads
            // is its own, under its cluster lock.
            Dialect::MySql if self.read_committed => {
                &["SET TRANSACTION ISOLATION LEVEL READ COMMITTED", "BEGIN"]
            }
            Dialect::MySql | Dialect::Postgres => &["BEGIN"],
        };
        let mut tx = ClusterTransaction {
            database: self.clone(),
            cluster: cluster.to_string(),
            lock_names: vec![lock_name],
            conn,
            // Set before BEGIN: if anything below fails, the drop closes the connection, which
            // also frees a MySQL named lock already taken.
            open: true,
        };
        for statement in begin {
            tx.execute_raw(statement, &what).await?;
        }
        if self.dialect == Dialect::Postgres {
            let key = lock_key(cluster);
            tx.execute_raw(&format!("SELECT pg_advisory_xact_lock({key})"), &what)
                .await?;
        }
        Ok(tx)
    }
}

/// One cluster's transaction, holding its lock. Dropped without [`commit`](Self::commit), it
/// rolls back: the connection is closed rather than returned to the pool, which ends the
/// transaction and releases the lock on the server.
pub struct ClusterTransaction {
    database: Database,
    cluster: String,
    /// MySQL: the named locks held (the cluster's, then its accounts'), released at the end.
    lock_names: Vec<String>,
    conn: PoolConnection<Any>,
    open: bool,
}

impl std::fmt::Debug for ClusterTransaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterTransaction")
            .field("cluster", &self.cluster)
            .field("open", &self.open)
            .finish()
    }
}

impl ClusterTransaction {
    /// The connection, for queries inside the transaction.
    pub fn conn(&mut self) -> &mut sqlx::AnyConnection {
        &mut self.conn
    }

    /// The database this transaction runs on.
    pub fn database(&self) -> &Database {
        &self.database
    }

    async fn execute_raw(&mut self, sql: &str, what: &str) -> Result<(), Error> {
        let database = self.database.clone();
        self.conn()
            .execute(sql)
            .await
            .map(|_| ())
            .map_err(|e| database.query_error(what.to_string(), e))
    }

    /// Commits and releases the lock.
    pub async fn commit(mut self) -> Result<(), Error> {
        let what = format!("committing cluster {}", self.cluster);
        // On failure `open` stays set: the drop closes the connection.
        self.execute_raw("COMMIT", &what).await?;
        self.open = false;
        self.release().await;
        Ok(())
    }

    /// Rolls back and releases the lock.
    pub async fn rollback(mut self) -> Result<(), Error> {
        let what = format!("rolling back cluster {}", self.cluster);
        self.execute_raw("ROLLBACK", &what).await?;
        self.open = false;
        self.release().await;
        Ok(())
    }

    /// Takes the locks of `accounts` too, for the rest of the transaction, so that one account
    /// is claimed by at most one cluster at any moment (the cluster's own lock only keeps its
    /// runs apart). Locks are taken in name order, so two clusters locking the same accounts
    /// cannot deadlock; always after the cluster's lock.
    pub async fn lock_accounts(&mut self, accounts: &[&str]) -> Result<(), Error> {
        let mut accounts: Vec<&str> = accounts.to_vec();
        accounts.sort_unstable();
        accounts.dedup();
        let timeout = LOCK_TIMEOUT.as_secs();
        for account in accounts {
            let what = format!("cluster {}: locking account {account}", self.cluster);
            let name = format!("account:{account}");
            match self.database.dialect {
                Dialect::MySql => {
                    let lock = lock_name(&name);
                    let got: Option<i64> = sqlx::query_scalar("SELECT GET_LOCK(?, ?)")
                        .bind(&lock)
                        .bind(timeout as i64)
                        .fetch_one(&mut *self.conn)
                        .await
                        .map_err(|e| self.database.query_error(what.clone(), e))?;
                    if got != Some(1) {
                        return Err(Error::LockTimeout {
                            url: self.database.display_url.clone(),
                            cluster: format!("{} (account {account})", self.cluster),
                            seconds: timeout,
                        });
                    }
                    self.lock_names.push(lock);
                }
                Dialect::Postgres => {
                    let key = lock_key(&name);
                    self.execute_raw(&format!("SELECT pg_advisory_xact_lock({key})"), &what)
                        .await?;
                }
                // The transaction holds SQLite's one write lock already.
                Dialect::Sqlite => {}
            }
        }
        Ok(())
    }

    async fn release(&mut self) {
        if self.database.dialect == Dialect::MySql {
            for lock in std::mem::take(&mut self.lock_names) {
                let released = sqlx::query("SELECT RELEASE_LOCK(?)")
                    .bind(&lock)
                    .execute(&mut *self.conn)
                    .await;
                if released.is_err() {
                    // The server releases it when the connection closes.
                    self.conn.close_on_drop();
                }
            }
        }
    }
}

impl Drop for ClusterTransaction {
    fn drop(&mut self) {
        if self.open {
            // Dropped mid-transaction (an error or a cancelled run): closing the connection
            // rolls the transaction back and frees the lock on the server; it is never handed
            // to anyone else in an unknown state.
            self.conn.close_on_drop();
        }
    }
}

/// The lock the schema migration takes: a name no cluster can have (a space), through the same
/// naming as the clusters' locks.
pub(super) const MIGRATION_LOCK: &str = "schema migration";

/// The MySQL lock name of a cluster, or of an account as `account:<name>` (no cluster name has a
/// `:`), ≤ 64 characters whatever the name.
pub(super) fn lock_name(cluster: &str) -> String {
    let digest = Sha256::digest(format!("outpost:{cluster}").as_bytes());
    format!("outpost:{}", &hex::encode(digest)[..40])
}

/// The PostgreSQL advisory lock key of a cluster, or of an account as `account:<name>`.
pub(super) fn lock_key(cluster: &str) -> i64 {
    let digest = Sha256::digest(format!("outpost:{cluster}").as_bytes());
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_names_fit_mysql_and_differ_per_cluster() {
        let long = "c".repeat(63);
        assert!(lock_name(&long).len() <= 64);
        assert_ne!(lock_name("a"), lock_name("b"));
        assert_ne!(lock_key("a"), lock_key("b"));
    }
}
