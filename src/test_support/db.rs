//! Fresh databases for one test or benchmark run: a SQLite file in a temporary folder, or a new
//! database on the PostgreSQL or MariaDB test server, dropped again when the run is done.

/// A database of its own for one test or run.
pub struct TestDb {
    /// What `Database::connect` takes.
    pub url: String,
    /// Where it lives: a server database to drop, or the SQLite file's folder.
    place: Place,
}

enum Place {
    Server { admin_url: String, name: String },
    Folder { _dir: tempfile::TempDir },
}

/// The environment variable naming the test server of a database kind (`postgres`, `mysql`).
pub fn server_var(kind: &str) -> &'static str {
    match kind {
        "postgres" => "OUTPOST_TEST_POSTGRES_URL",
        "mysql" => "OUTPOST_TEST_MYSQL_URL",
        other => panic!("no test server for database kind {other:?}"),
    }
}

/// The PostgreSQL and MySQL servers a benchmark runs against: `OUTPOST_TEST_POSTGRES_URL` and
/// `OUTPOST_TEST_MYSQL_URL`, or, for a full run (`cargo bench`), the local ones of
/// `scripts/test-db` for whichever is unset. `None`: a smoke run without servers, to skip.
pub fn bench_servers(full: bool) -> Option<(String, String)> {
    let urls = (
        std::env::var(server_var("postgres")).ok(),
        std::env::var(server_var("mysql")).ok(),
    );
    match urls {
        (Some(pg), Some(my)) => Some((pg, my)),
        _ if full => Some((
            urls.0
                .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".into()),
            urls.1
                .unwrap_or_else(|| "mysql://root@127.0.0.1:3306/mysql".into()),
        )),
        _ => None,
    }
}

/// A fresh database of `kind` (`sqlite`, `postgres`, `mysql`) for a test; `None` when that
/// kind's server is not set (see [`super::server_url`]).
pub async fn fresh_database(kind: &str) -> Option<TestDb> {
    if kind == "sqlite" {
        return Some(sqlite_database());
    }
    let base = super::server_url(server_var(kind))?;
    Some(server_database(&base, "outpost_test").await)
}

/// A SQLite file in a fresh temporary folder (removed with the [`TestDb`]).
pub fn sqlite_database() -> TestDb {
    let dir = tempfile::tempdir().expect("a temporary folder");
    TestDb {
        url: format!("sqlite://{}", dir.path().join("cache.db").display()),
        place: Place::Folder { _dir: dir },
    }
}

/// A new database named `<prefix>_<random>` on the server at `admin_url` (a URL of a database
/// the test user may create databases from).
pub async fn server_database(admin_url: &str, prefix: &str) -> TestDb {
    sqlx::any::install_default_drivers();
    let name = format!("{prefix}_{:08x}", rand::random::<u32>());
    let admin = sqlx::AnyPool::connect(admin_url)
        .await
        .unwrap_or_else(|e| panic!("connecting to {admin_url}: {e}"));
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&admin)
        .await
        .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
    admin.close().await;
    let mut url = url::Url::parse(admin_url).expect("a database URL");
    url.set_path(&format!("/{name}"));
    TestDb {
        url: url.to_string(),
        place: Place::Server {
            admin_url: admin_url.to_string(),
            name,
        },
    }
}

impl TestDb {
    /// The server database's name (`None` for SQLite).
    pub fn name(&self) -> Option<&str> {
        match &self.place {
            Place::Server { name, .. } => Some(name),
            Place::Folder { .. } => None,
        }
    }

    /// Runs `sql` (with `{name}` standing for the database's name) on the server's admin
    /// connection; nothing for SQLite.
    async fn admin(&self, sql: &str) -> Result<(), sqlx::Error> {
        let Place::Server { admin_url, name } = &self.place else {
            return Ok(());
        };
        let admin = sqlx::AnyPool::connect(admin_url).await?;
        let result = sqlx::query(&sql.replace("{name}", name))
            .execute(&admin)
            .await;
        admin.close().await;
        result.map(drop)
    }

    /// Turns PostgreSQL's JIT compilation off for this database's future sessions.
    pub async fn jit_off(&self) {
        self.admin("ALTER DATABASE {name} SET jit = off")
            .await
            .unwrap_or_else(|e| panic!("jit = off on {:?}: {e}", self.name()));
    }

    /// Drops a server database (a test calls it once it passed; a failed one is left to look at).
    pub async fn drop_database(&self) {
        if let Err(e) = self.admin("DROP DATABASE {name}").await {
            eprintln!("could not drop {:?}: {e}", self.name());
        }
    }
}
