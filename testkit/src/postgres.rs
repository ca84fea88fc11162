//! A PostgreSQL database of its own for each test, on the development server
//! (`$WANGGE_TEST_POSTGRES`, default `postgres://postgres@127.0.0.1:5432`, trust auth as
//! `deploy/dev/ensure-services.sh` sets it up). Created with a unique name, dropped (with
//! its connections) when the value is dropped.

use std::sync::atomic::{AtomicUsize, Ordering};

use tokio_postgres::NoTls;

/// The server tests create their databases on.
pub fn postgres_server_url() -> String {
    std::env::var("WANGGE_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned())
}

/// One test's database.
pub struct TestDatabase {
    name: String,
    server: String,
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

impl TestDatabase {
    /// Creates an empty database with a name no other test uses.
    pub async fn create() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let name = format!(
            "wangge_test_{}_{}_{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let server = postgres_server_url();
        let client = connect(&format!("{server}/postgres")).await;
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap_or_else(|e| panic!("create test database {name}: {e}"));
        Self { name, server }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `postgres://…/<name>`.
    pub fn url(&self) -> String {
        format!("{}/{}", self.server, self.name)
    }

    /// A connection to this database.
    pub async fn connect(&self) -> tokio_postgres::Client {
        connect(&self.url()).await
    }

    /// Every row of `table` as text, sorted: two tables hold the same rows exactly when
    /// these lists are equal.
    pub async fn rows(&self, table: &str) -> Vec<String> {
        let client = self.connect().await;
        client
            .query(
                &format!("SELECT t::text FROM {table} t ORDER BY t::text COLLATE \"C\""),
                &[],
            )
            .await
            .unwrap_or_else(|e| panic!("read table {table} of {}: {e:?}", self.name))
            .iter()
            .map(|row| row.get(0))
            .collect()
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let (server, name) = (self.server.clone(), self.name.clone());
        // Drop may run inside a runtime: drop the database from a thread of its own.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let (client, connection) =
                    tokio_postgres::connect(&format!("{server}/postgres"), NoTls)
                        .await
                        .ok()?;
                tokio::spawn(connection);
                client
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await
                    .ok()
            })
        })
        .join();
        if !matches!(dropped, Ok(Some(()))) {
            eprintln!("could not drop test database {}", self.name);
        }
    }
}

async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "connect to {url}: {e}; start PostgreSQL with `bash deploy/dev/ensure-services.sh`"
            )
        });
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}
