//! One way to run a statement on either backend, so each store operation is written once.
//!
//! Statements are written with PostgreSQL's `$1, $2…` placeholders; SQLite takes them as named
//! parameters and drops PostgreSQL's `::type` casts. Arguments are owned values ([`Arg`]) that
//! each backend writes as its column type (a timestamp is `TIMESTAMPTZ` there, ISO text here), and
//! rows come back as [`Vals`] with typed getters that read either form. What really differs — how
//! a transaction takes its locks — stays in [`Tx::begin`] and the few places that ask for
//! [`Tx::is_postgres`].

use chrono::{DateTime, NaiveDate, Utc};
use deadpool_postgres::Object;
use tokio_postgres::types::{IsNull, ToSql, Type};

use super::{parse_ts, ts, Store, StoreError};

/// A statement argument.
#[derive(Debug, Clone)]
pub(super) enum Arg {
    Null,
    Int(i64),
    Text(String),
    Bytes(Vec<u8>),
    Ts(DateTime<Utc>),
    Date(NaiveDate),
    /// Arrays, for PostgreSQL's `UNNEST` (a statement text that does not grow with a group's
    /// size, so it is prepared once); SQLite has no arrays and takes multi-row `VALUES` instead.
    Ints(Vec<i64>),
    Texts(Vec<Option<String>>),
    Blobs(Vec<Vec<u8>>),
    Dates(Vec<NaiveDate>),
}

macro_rules! arg_from {
    ($($t:ty => $v:ident),* $(,)?) => {
        $(impl From<$t> for Arg {
            fn from(v: $t) -> Arg {
                Arg::$v(v.into())
            }
        }
        impl From<Option<$t>> for Arg {
            fn from(v: Option<$t>) -> Arg {
                v.map(Arg::from).unwrap_or(Arg::Null)
            }
        })*
    };
}

arg_from!(i64 => Int, i32 => Int, String => Text, &str => Text, Vec<u8> => Bytes, DateTime<Utc> => Ts, NaiveDate => Date);

/// The domain's named values go in as their names.
macro_rules! arg_from_name {
    ($($t:ty),*) => {
        $(impl From<$t> for Arg {
            fn from(v: $t) -> Arg {
                Arg::Text(v.as_str().to_string())
            }
        })*
    };
}

arg_from_name!(
    crate::domain::DocState,
    crate::domain::UploadStatus,
    crate::domain::ItemState,
    crate::domain::BatchState,
    crate::domain::Environment
);

impl From<bool> for Arg {
    fn from(v: bool) -> Arg {
        Arg::Int(v.into())
    }
}

impl From<&String> for Arg {
    fn from(v: &String) -> Arg {
        Arg::Text(v.clone())
    }
}

/// The arguments of one statement: `args![a, b, c]`.
macro_rules! args {
    ($($a:expr),* $(,)?) => { vec![$($crate::store::sql::Arg::from($a)),*] };
}
pub(super) use args;

impl rusqlite::ToSql for Arg {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, Value};
        Ok(match self {
            Arg::Null => ToSqlOutput::Owned(Value::Null),
            Arg::Int(v) => ToSqlOutput::Owned(Value::Integer(*v)),
            Arg::Text(v) => ToSqlOutput::from(v.as_str()),
            Arg::Bytes(v) => ToSqlOutput::from(v.as_slice()),
            Arg::Ts(v) => ToSqlOutput::Owned(Value::Text(ts(*v))),
            Arg::Date(v) => ToSqlOutput::Owned(Value::Text(v.to_string())),
            Arg::Ints(_) | Arg::Texts(_) | Arg::Blobs(_) | Arg::Dates(_) => {
                return Err(rusqlite::Error::ToSqlConversionFailure("arrays are for PostgreSQL only".into()))
            }
        })
    }
}

type BoxError = Box<dyn std::error::Error + Sync + Send>;

impl ToSql for Arg {
    /// Written as the parameter's declared type: an integer as `INT4` or `INT8`, a time as
    /// `TIMESTAMPTZ` or text (the audit chain keeps its times as the text it hashed).
    fn to_sql(&self, ty: &Type, out: &mut bytes::BytesMut) -> Result<IsNull, BoxError> {
        match self {
            Arg::Null => Ok(IsNull::Yes),
            Arg::Int(v) if *ty == Type::INT4 => i32::try_from(*v)?.to_sql(ty, out),
            Arg::Int(v) if *ty == Type::INT2 => i16::try_from(*v)?.to_sql(ty, out),
            Arg::Int(v) if *ty == Type::BOOL => (*v != 0).to_sql(ty, out),
            Arg::Int(v) => v.to_sql(ty, out),
            Arg::Text(v) => v.as_str().to_sql(ty, out),
            Arg::Bytes(v) => v.as_slice().to_sql(ty, out),
            Arg::Ts(v) if *ty == Type::TEXT || *ty == Type::VARCHAR => ts(*v).as_str().to_sql(ty, out),
            Arg::Ts(v) => v.to_sql(ty, out),
            Arg::Date(v) if *ty == Type::TEXT || *ty == Type::VARCHAR => v.to_string().as_str().to_sql(ty, out),
            Arg::Date(v) => v.to_sql(ty, out),
            Arg::Ints(v) if *ty == Type::INT4_ARRAY => {
                v.iter().map(|x| i32::try_from(*x)).collect::<Result<Vec<_>, _>>()?.to_sql(ty, out)
            }
            Arg::Ints(v) => v.to_sql(ty, out),
            Arg::Texts(v) => v.to_sql(ty, out),
            Arg::Blobs(v) => v.to_sql(ty, out),
            Arg::Dates(v) => v.to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    tokio_postgres::types::to_sql_checked!();
}

/// A statement and its arguments, for [`Tx::run_all`].
pub(super) struct Stmt {
    pub sql: String,
    pub args: Vec<Arg>,
}

impl Stmt {
    pub fn new(sql: impl Into<String>, args: Vec<Arg>) -> Stmt {
        Stmt { sql: sql.into(), args }
    }
}

/// One column's value as read.
#[derive(Debug, Clone)]
enum Val {
    Null,
    Int(i64),
    Text(String),
    Bytes(Vec<u8>),
    Ts(DateTime<Utc>),
    Date(NaiveDate),
    Bool(bool),
}

/// A row, read off either backend.
#[derive(Debug, Clone)]
pub(super) struct Vals(Vec<Val>);

fn bad(i: usize, want: &str, got: &Val) -> StoreError {
    StoreError::Db(format!("column {i}: expected {want}, found {got:?}"))
}

impl Vals {
    fn at(&self, i: usize) -> Result<&Val, StoreError> {
        self.0.get(i).ok_or_else(|| StoreError::Db(format!("no column {i}")))
    }

    pub fn is_null(&self, i: usize) -> bool {
        matches!(self.0.get(i), Some(Val::Null) | None)
    }

    pub fn i64(&self, i: usize) -> Result<i64, StoreError> {
        match self.at(i)? {
            Val::Int(v) => Ok(*v),
            Val::Bool(b) => Ok(*b as i64),
            other => Err(bad(i, "an integer", other)),
        }
    }

    pub fn i32(&self, i: usize) -> Result<i32, StoreError> {
        i32::try_from(self.i64(i)?).map_err(|e| StoreError::Db(format!("column {i}: {e}")))
    }

    pub fn text(&self, i: usize) -> Result<String, StoreError> {
        match self.at(i)? {
            Val::Text(v) => Ok(v.clone()),
            other => Err(bad(i, "text", other)),
        }
    }

    pub fn bytes(&self, i: usize) -> Result<Vec<u8>, StoreError> {
        match self.at(i)? {
            Val::Bytes(v) => Ok(v.clone()),
            Val::Text(v) => Ok(v.clone().into_bytes()),
            other => Err(bad(i, "bytes", other)),
        }
    }

    pub fn ts(&self, i: usize) -> Result<DateTime<Utc>, StoreError> {
        match self.at(i)? {
            Val::Ts(v) => Ok(*v),
            Val::Text(v) => Ok(parse_ts(v)),
            other => Err(bad(i, "a timestamp", other)),
        }
    }

    pub fn date(&self, i: usize) -> Result<NaiveDate, StoreError> {
        match self.at(i)? {
            Val::Date(v) => Ok(*v),
            Val::Text(v) => {
                NaiveDate::parse_from_str(v, "%Y-%m-%d").map_err(|e| StoreError::Db(format!("column {i}: {e}")))
            }
            other => Err(bad(i, "a date", other)),
        }
    }

    /// A value the domain parses strictly (states, environments): an unknown name is an error.
    pub fn parse<T: std::str::FromStr<Err = String>>(&self, i: usize) -> Result<T, StoreError> {
        self.text(i)?.parse().map_err(StoreError::Db)
    }

    pub fn opt<T>(
        &self,
        i: usize,
        get: impl Fn(&Vals, usize) -> Result<T, StoreError>,
    ) -> Result<Option<T>, StoreError> {
        if self.is_null(i) {
            Ok(None)
        } else {
            get(self, i).map(Some)
        }
    }

    fn from_sqlite(r: &rusqlite::Row<'_>, n: usize) -> rusqlite::Result<Vals> {
        use rusqlite::types::ValueRef;
        let mut v = Vec::with_capacity(n);
        for i in 0..n {
            v.push(match r.get_ref(i)? {
                ValueRef::Null => Val::Null,
                ValueRef::Integer(x) => Val::Int(x),
                ValueRef::Real(x) => Val::Int(x as i64),
                ValueRef::Text(t) => Val::Text(String::from_utf8_lossy(t).into_owned()),
                ValueRef::Blob(b) => Val::Bytes(b.to_vec()),
            });
        }
        Ok(Vals(v))
    }

    fn from_postgres(r: &tokio_postgres::Row) -> Result<Vals, StoreError> {
        let mut v = Vec::with_capacity(r.len());
        for (i, c) in r.columns().iter().enumerate() {
            let t = c.type_();
            let val = if *t == Type::VOID {
                // `SELECT pg_advisory_xact_lock(…)`: nothing to read.
                None
            } else if *t == Type::INT8 {
                r.try_get::<_, Option<i64>>(i)?.map(Val::Int)
            } else if *t == Type::INT4 {
                r.try_get::<_, Option<i32>>(i)?.map(|x| Val::Int(x.into()))
            } else if *t == Type::INT2 {
                r.try_get::<_, Option<i16>>(i)?.map(|x| Val::Int(x.into()))
            } else if *t == Type::BOOL {
                r.try_get::<_, Option<bool>>(i)?.map(Val::Bool)
            } else if *t == Type::BYTEA {
                r.try_get::<_, Option<Vec<u8>>>(i)?.map(Val::Bytes)
            } else if *t == Type::TIMESTAMPTZ {
                r.try_get::<_, Option<DateTime<Utc>>>(i)?.map(Val::Ts)
            } else if *t == Type::DATE {
                r.try_get::<_, Option<NaiveDate>>(i)?.map(Val::Date)
            } else {
                r.try_get::<_, Option<String>>(i)?.map(Val::Text)
            };
            v.push(val.unwrap_or(Val::Null));
        }
        Ok(Vals(v))
    }
}

/// `$n` placeholders kept (SQLite reads them as named parameters), `::type` casts dropped.
fn sqlite_dialect(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql;
    while let Some(i) = rest.find("::") {
        out.push_str(&rest[..i]);
        rest =
            rest[i + 2..].trim_start_matches(|c: char| c.is_ascii_alphanumeric() || c == '_' || c == '[' || c == ']');
    }
    out.push_str(rest);
    out
}

fn sqlite_run(c: &rusqlite::Connection, sql: &str, args: &[Arg], rows: bool) -> Result<(u64, Vec<Vals>), StoreError> {
    let mut st = c.prepare_cached(&sqlite_dialect(sql))?;
    for (n, a) in args.iter().enumerate() {
        if let Some(i) = st.parameter_index(&format!("${}", n + 1))? {
            st.raw_bind_parameter(i, a)?;
        }
    }
    if !rows {
        return Ok((st.raw_execute()? as u64, Vec::new()));
    }
    let cols = st.column_count();
    let mut out = Vec::new();
    let mut q = st.raw_query();
    while let Some(r) = q.next()? {
        out.push(Vals::from_sqlite(r, cols)?);
    }
    Ok((out.len() as u64, out))
}

/// `$from, $from+1, …` for `n` values: an `IN (…)` list or one row of a `VALUES`.
pub(super) fn placeholders(from: usize, n: usize) -> String {
    (from..from + n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

/// `n` rows of `width` placeholders numbered from `from`, each column with its cast (if any).
pub(super) fn value_rows(from: usize, n: usize, width: usize, casts: &[&str]) -> String {
    (0..n)
        .map(|r| {
            let cols: Vec<String> = (0..width)
                .map(|c| format!("${}{}", from + r * width + c, casts.get(c).copied().unwrap_or("")))
                .collect();
            format!("({})", cols.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn pg_params(args: &[Arg]) -> Vec<&(dyn ToSql + Sync)> {
    args.iter().map(|a| a as &(dyn ToSql + Sync)).collect()
}

/// Each statement prepared (once per connection: deadpool caches them).
async fn pg_prepare(c: &Object, stmts: &[Stmt]) -> Result<Vec<tokio_postgres::Statement>, StoreError> {
    let mut prepared = Vec::with_capacity(stmts.len());
    for s in stmts {
        prepared.push(c.prepare_cached(&s.sql).await?);
    }
    Ok(prepared)
}

enum Conn {
    Sqlite(Option<super::sqlite::Held>),
    Postgres(Option<Box<Object>>),
}

/// A transaction on either backend. Dropped without [`Tx::commit`]: rolled back (on PostgreSQL
/// the connection is closed rather than returned to the pool mid-transaction).
pub(super) struct Tx {
    conn: Conn,
    /// PostgreSQL: `BEGIN` goes out with the first statement (one round trip saved).
    begun: bool,
    /// What the audit entries written in this transaction are MACed with.
    pub(super) audit_key: Option<super::AuditKey>,
}

impl Drop for Tx {
    fn drop(&mut self) {
        match &mut self.conn {
            // `Held` rolls back whatever it leaves open.
            Conn::Sqlite(_) => {}
            Conn::Postgres(o) => {
                // Never begun: the connection is clean and goes back to the pool.
                if let Some(c) = o.take().filter(|_| self.begun) {
                    drop(Object::take(*c));
                }
            }
        }
    }
}

impl Tx {
    /// Opens a write transaction: SQLite takes its single write lock now (`BEGIN IMMEDIATE`), so
    /// two writers never deadlock on an upgrade; PostgreSQL locks rows as statements ask.
    pub async fn begin(store: &Store) -> Result<Tx, StoreError> {
        Ok(match store {
            Store::Sqlite(s) => {
                let g = s.hold().await;
                let g = tokio::task::spawn_blocking(move || g.execute_batch("BEGIN IMMEDIATE").map(|_| g))
                    .await
                    .map_err(|e| StoreError::Db(e.to_string()))??;
                Tx { conn: Conn::Sqlite(Some(g)), begun: true, audit_key: s.audit_key.get() }
            }
            Store::Postgres(p) => {
                let c = p.pool.get().await?;
                Tx { conn: Conn::Postgres(Some(Box::new(c))), begun: false, audit_key: p.audit_key.get() }
            }
        })
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self.conn, Conn::Postgres(_))
    }

    async fn run(&mut self, sql: &str, args: Vec<Arg>, rows: bool) -> Result<(u64, Vec<Vals>), StoreError> {
        if let Conn::Sqlite(slot) = &mut self.conn {
            let g = slot.take().ok_or_else(|| StoreError::Db("transaction closed".into()))?;
            let sql = sql.to_string();
            let (g, r) = tokio::task::spawn_blocking(move || {
                let r = sqlite_run(&g, &sql, &args, rows);
                (g, r)
            })
            .await
            .map_err(|e| StoreError::Db(e.to_string()))?;
            *slot = Some(g);
            return r;
        }
        let mut out = self.run_all(vec![Stmt::new(sql, args)], rows).await?;
        Ok(out.pop().unwrap_or_default())
    }

    /// Runs statements in order: on PostgreSQL sent together (pipelined, one round trip for all
    /// once prepared), on SQLite in one hop to the blocking pool. `(rows changed, rows)` each.
    pub async fn run_all(&mut self, stmts: Vec<Stmt>, rows: bool) -> Result<Vec<(u64, Vec<Vals>)>, StoreError> {
        let begin = !self.begun;
        match &mut self.conn {
            Conn::Sqlite(slot) => {
                let g = slot.take().ok_or_else(|| StoreError::Db("transaction closed".into()))?;
                let (g, r) = tokio::task::spawn_blocking(move || {
                    let r = stmts.iter().map(|s| sqlite_run(&g, &s.sql, &s.args, rows)).collect::<Result<Vec<_>, _>>();
                    (g, r)
                })
                .await
                .map_err(|e| StoreError::Db(e.to_string()))?;
                *slot = Some(g);
                r
            }
            Conn::Postgres(Some(c)) => {
                let c: &Object = c;
                let prepared = pg_prepare(c, &stmts).await?;
                let params: Vec<_> = stmts.iter().map(|s| pg_params(&s.args)).collect();
                let queries = futures_util::future::join_all(prepared.iter().zip(&params).map(|(st, p)| async move {
                    if rows {
                        c.query(st, p).await.map(|r| (r.len() as u64, r))
                    } else {
                        c.execute(st, p).await.map(|n| (n, Vec::new()))
                    }
                }));
                let begin_sent = async {
                    if begin {
                        c.batch_execute("BEGIN").await
                    } else {
                        Ok(())
                    }
                };
                // From the first poll on, BEGIN may be on the wire: a cancelled call must not hand
                // the connection back to the pool as if clean.
                self.begun = true;
                // Polled in this order: BEGIN goes out before the statements.
                let (b, results) = tokio::join!(begin_sent, queries);
                b?;
                let mut out = Vec::with_capacity(results.len());
                for r in results {
                    let (n, rs) = r?;
                    let v = rs.iter().map(Vals::from_postgres).collect::<Result<Vec<_>, _>>()?;
                    out.push((n, v));
                }
                Ok(out)
            }
            Conn::Postgres(None) => Err(StoreError::Db("transaction closed".into())),
        }
    }

    /// Rows changed.
    pub async fn exec(&mut self, sql: &str, args: Vec<Arg>) -> Result<u64, StoreError> {
        Ok(self.run(sql, args, false).await?.0)
    }

    pub async fn query(&mut self, sql: &str, args: Vec<Arg>) -> Result<Vec<Vals>, StoreError> {
        Ok(self.run(sql, args, true).await?.1)
    }

    pub async fn query_opt(&mut self, sql: &str, args: Vec<Arg>) -> Result<Option<Vals>, StoreError> {
        Ok(self.query(sql, args).await?.into_iter().next())
    }

    /// Ends the transaction without writing; the connection goes back to use at once.
    pub async fn rollback(mut self) {
        match &mut self.conn {
            Conn::Sqlite(slot) => {
                if let Some(g) = slot.take() {
                    let _ = tokio::task::spawn_blocking(move || g.execute_batch("ROLLBACK")).await;
                }
            }
            Conn::Postgres(slot) => {
                if let Some(c) = slot.take().filter(|_| self.begun) {
                    if c.batch_execute("ROLLBACK").await.is_err() {
                        drop(Object::take(*c));
                    }
                }
            }
        }
    }

    /// Runs the last statements and commits, in one round trip on PostgreSQL (a failed
    /// statement turns the `COMMIT` into a rollback, and its error is returned).
    pub async fn commit_with(mut self, stmts: Vec<Stmt>) -> Result<(), StoreError> {
        if let (Conn::Postgres(Some(c)), true) = (&self.conn, self.begun) {
            let c: &Object = c;
            let prepared = pg_prepare(c, &stmts).await?;
            let params: Vec<_> = stmts.iter().map(|s| pg_params(&s.args)).collect();
            let writes = futures_util::future::join_all(
                prepared.iter().zip(&params).map(|(st, p)| async move { c.execute(st, p).await }),
            );
            let (written, committed) = tokio::join!(writes, c.batch_execute("COMMIT"));
            for w in written {
                w?;
            }
            committed?;
            if let Conn::Postgres(slot) = &mut self.conn {
                // Committed (or rolled back by the failure above, already returned): clean.
                drop(slot.take());
            }
            return Ok(());
        }
        self.run_all(stmts, false).await?;
        self.commit().await
    }

    pub async fn commit(mut self) -> Result<(), StoreError> {
        match &mut self.conn {
            Conn::Sqlite(slot) => {
                if let Some(g) = slot.take() {
                    let (g, r) = tokio::task::spawn_blocking(move || {
                        let r = g.execute_batch("COMMIT");
                        (g, r)
                    })
                    .await
                    .map_err(|e| StoreError::Db(e.to_string()))?;
                    // A failed COMMIT leaves the transaction open: the drop rolls it back.
                    if r.is_err() {
                        *slot = Some(g);
                    }
                    r?;
                }
            }
            Conn::Postgres(slot) => {
                if let Some(c) = slot.as_ref().filter(|_| self.begun) {
                    c.batch_execute("COMMIT").await?;
                }
                // Committed (or never begun): back to the pool clean.
                drop(slot.take());
            }
        }
        Ok(())
    }
}

impl Store {
    /// One statement on its own (autocommit): `(rows changed, rows)`.
    async fn run(&self, sql: &str, args: Vec<Arg>, rows: bool) -> Result<(u64, Vec<Vals>), StoreError> {
        match self {
            Store::Sqlite(s) => {
                let sql = sql.to_string();
                s.with(move |c| sqlite_run(c, &sql, &args, rows)).await
            }
            Store::Postgres(p) => {
                let c = p.pool.get().await?;
                let st = c.prepare_cached(sql).await?;
                let params = pg_params(&args);
                if rows {
                    let v =
                        c.query(&st, &params).await?.iter().map(Vals::from_postgres).collect::<Result<Vec<_>, _>>()?;
                    Ok((v.len() as u64, v))
                } else {
                    Ok((c.execute(&st, &params).await?, Vec::new()))
                }
            }
        }
    }

    /// For reads and single writes that return rows.
    pub(super) async fn query(&self, sql: &str, args: Vec<Arg>) -> Result<Vec<Vals>, StoreError> {
        Ok(self.run(sql, args, true).await?.1)
    }

    pub(super) async fn query_opt(&self, sql: &str, args: Vec<Arg>) -> Result<Option<Vals>, StoreError> {
        Ok(self.query(sql, args).await?.into_iter().next())
    }

    /// Rows changed.
    pub(super) async fn exec(&self, sql: &str, args: Vec<Arg>) -> Result<u64, StoreError> {
        Ok(self.run(sql, args, false).await?.0)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sqlite_dialect_drops_casts_only() {
        assert_eq!(
            super::sqlite_dialect("SELECT $1::text, attempts::BIGINT FROM t WHERE a = ANY($2::bigint[]) AND b = 'x'"),
            "SELECT $1, attempts FROM t WHERE a = ANY($2) AND b = 'x'"
        );
    }
}
