//! API keys in PostgreSQL (table `api_keys`, migration V7), beside the read models they
//! open: [`ApiKeyStore`] for `wangge serve --postgres-url` and `wangge auth key`.

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use tokio_postgres::Row;

use crate::http::api_keys::{ApiKeyError, ApiKeyRecord, ApiKeyStore};

/// The `api_keys` table of a read-model database (migrated).
#[derive(Clone)]
pub struct PostgresApiKeys {
    pool: Pool,
}

impl PostgresApiKeys {
    pub fn new(pool: Pool) -> Self {
        Self { pool }
    }

    async fn client(&self) -> Result<deadpool_postgres::Client, ApiKeyError> {
        self.pool
            .get()
            .await
            .map_err(|error| ApiKeyError::Store(error.to_string()))
    }
}

fn store_error(error: tokio_postgres::Error) -> ApiKeyError {
    ApiKeyError::Store(error.to_string())
}

fn record(row: &Row) -> Result<ApiKeyRecord, ApiKeyError> {
    let role: String = row.get("role");
    Ok(ApiKeyRecord {
        name: row.get("name"),
        role: role.parse().map_err(ApiKeyError::Store)?,
        district: row.get("district"),
        key_hash: row.get("key_hash"),
        key_prefix: row.get("key_prefix"),
        created_at: row.get("created_at"),
        revoked_at: row.get("revoked_at"),
    })
}

#[async_trait::async_trait]
impl ApiKeyStore for PostgresApiKeys {
    async fn insert(&self, key: ApiKeyRecord) -> Result<(), ApiKeyError> {
        let client = self.client().await?;
        let inserted = client
            .execute(
                "INSERT INTO api_keys (name, role, district, key_hash, key_prefix, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (name) DO NOTHING",
                &[
                    &key.name,
                    &key.role.as_str(),
                    &key.district,
                    &key.key_hash,
                    &key.key_prefix,
                    &key.created_at,
                ],
            )
            .await
            .map_err(store_error)?;
        if inserted == 0 {
            return Err(ApiKeyError::NameTaken(key.name));
        }
        Ok(())
    }

    async fn list(&self) -> Result<Vec<ApiKeyRecord>, ApiKeyError> {
        let client = self.client().await?;
        let rows = client
            .query("SELECT * FROM api_keys ORDER BY created_at, name", &[])
            .await
            .map_err(store_error)?;
        rows.iter().map(record).collect()
    }

    async fn revoke(&self, name: &str, at: DateTime<Utc>) -> Result<bool, ApiKeyError> {
        let client = self.client().await?;
        let row = client
            .query_opt("SELECT revoked_at FROM api_keys WHERE name = $1", &[&name])
            .await
            .map_err(store_error)?
            .ok_or_else(|| ApiKeyError::UnknownName(name.to_owned()))?;
        let revoked: Option<DateTime<Utc>> = row.get(0);
        if revoked.is_some() {
            return Ok(false);
        }
        let changed = client
            .execute(
                "UPDATE api_keys SET revoked_at = $2 WHERE name = $1 AND revoked_at IS NULL",
                &[&name, &at],
            )
            .await
            .map_err(store_error)?;
        Ok(changed == 1)
    }

    async fn find_by_hash(&self, key_hash: &str) -> Result<Option<ApiKeyRecord>, ApiKeyError> {
        let client = self.client().await?;
        client
            .query_opt("SELECT * FROM api_keys WHERE key_hash = $1", &[&key_hash])
            .await
            .map_err(store_error)?
            .as_ref()
            .map(record)
            .transpose()
    }
}
