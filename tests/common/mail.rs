//! Real dovecot (IMAP) + aiosmtpd (SMTP -> Maildir) per test, on 127.0.0.1.
//! Needs root (dovecot runs mail as the `mail` user), `dovecot-imapd` and python3 with aiosmtpd
//! (`scripts/deps test` installs them).
#![allow(dead_code)]
use std::fs;
use std::io::{self, BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub const PASSWORD: &str = "secret";
const MAIL_USER: &str = "mail"; // uid/gid 8 on Debian; dovecot refuses uid 0 for mail

pub struct MailServers {
    pub dir: PathBuf,
    pub imap_port: u16,
    pub smtp_port: u16,
    dovecot: Child,
    smtp: Child,
}

fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Poll until something accepts on 127.0.0.1:port; fail early if the child died.
pub fn wait_for_port(port: u16, child: &mut Child, timeout: Duration) -> io::Result<()> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let start = Instant::now();
    loop {
        if let Some(st) = child.try_wait()? {
            return Err(io::Error::other(format!("server exited early: {st}")));
        }
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if start.elapsed() > timeout {
            return Err(io::Error::new(io::ErrorKind::TimedOut, format!("port {port} not ready")));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn unique_dir() -> io::Result<PathBuf> {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    let d = std::env::temp_dir().join(format!(
        "mailtest-{}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst),
        nanos
    ));
    fs::create_dir(&d)?;
    // dovecot's auth process (uid dovecot) and imap process (uid mail) must traverse it
    fs::set_permissions(&d, fs::Permissions::from_mode(0o755))?;
    Ok(d)
}

fn dovecot_conf(d: &Path, port: u16) -> String {
    let d = d.display();
    format!(
        r#"protocols = imap
listen = 127.0.0.1
base_dir = {d}/run
state_dir = {d}/state
instance_name = dovecot-test-{port}
log_path = {d}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:~/Maildir
mail_uid = {MAIL_USER}
mail_gid = {MAIL_USER}
first_valid_uid = 1
first_valid_gid = 1
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {d}/users
}}
userdb {{
  driver = static
  args = uid={MAIL_USER} gid={MAIL_USER} home={d}/mail/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
"#
    )
}

fn kill_group(child: &mut Child, sig: &str) {
    // children were started with process_group(0): pgid == pid, so "-pid" hits
    // dovecot's whole tree (master, auth, imap, log, ...), not just the master.
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg("--")
        .arg(format!("-{}", child.id()))
        .stderr(Stdio::null())
        .status();
    let _ = child.wait();
}

impl MailServers {
    pub fn start(users: &[&str]) -> io::Result<Self> {
        let dir = unique_dir()?;
        let mut pw = String::new();
        for u in users {
            pw.push_str(&format!("{u}:{{PLAIN}}{PASSWORD}\n"));
            for sub in ["cur", "new", "tmp"] {
                fs::create_dir_all(dir.join("mail").join(u).join("Maildir").join(sub))?;
            }
        }
        fs::write(dir.join("users"), pw)?;
        let st =
            Command::new("chown").args(["-R", &format!("{MAIL_USER}:{MAIL_USER}")]).arg(dir.join("mail")).status()?;
        if !st.success() {
            return Err(io::Error::other("chown failed"));
        }

        // dovecot: pick a free port; retry if someone grabbed it in between
        let mut last_err = None;
        for _ in 0..5 {
            let port = free_port()?;
            let conf = dir.join("dovecot.conf");
            fs::write(&conf, dovecot_conf(&dir, port))?;
            let mut child = Command::new("dovecot")
                .arg("-F")
                .arg("-c")
                .arg(&conf)
                .stdin(Stdio::null())
                .stdout(fs::File::create(dir.join("dovecot.stdout"))?)
                .stderr(fs::File::create(dir.join("dovecot.stderr"))?)
                .process_group(0)
                .spawn()?;
            match wait_for_port(port, &mut child, Duration::from_secs(10)) {
                Ok(()) => {
                    let smtp = Self::start_smtp(&dir).inspect_err(|_| kill_group(&mut child, "TERM"))?;
                    let (smtp, smtp_port) = smtp;
                    return Ok(MailServers { dir, imap_port: port, smtp_port, dovecot: child, smtp });
                }
                Err(e) => {
                    kill_group(&mut child, "KILL");
                    last_err = Some(e);
                }
            }
        }
        Err(last_err.unwrap_or_else(|| io::Error::other("dovecot did not start")))
    }

    fn start_smtp(dir: &Path) -> io::Result<(Child, u16)> {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tools/smtp_maildir.py");
        let python = std::env::var("MAILTEST_PYTHON").unwrap_or_else(|_| "python3".into());
        let mut child = Command::new(python)
            .arg(script)
            .args(["--port", "0", "--auth"])
            .arg("--root")
            .arg(dir.join("mail"))
            .arg("--users")
            .arg(dir.join("users"))
            .arg("--fail-file")
            .arg(dir.join("smtp.fail"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(fs::File::create(dir.join("smtp.log"))?)
            .process_group(0)
            .spawn()?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line)?;
        match line.trim().strip_prefix("READY ").and_then(|p| p.parse().ok()) {
            Some(port) => Ok((child, port)),
            None => {
                kill_group(&mut child, "KILL");
                Err(io::Error::other(format!("smtp server did not start: {line:?}, see {}/smtp.log", dir.display())))
            }
        }
    }

    pub fn maildir(&self, user: &str) -> PathBuf {
        self.dir.join("mail").join(user).join("Maildir")
    }

    /// Every message delivered to `user` (new and seen).
    pub fn messages(&self, user: &str) -> Vec<Vec<u8>> {
        let dir = self.maildir(user);
        let mut out = Vec::new();
        for sub in ["new", "cur"] {
            for e in fs::read_dir(dir.join(sub)).into_iter().flatten().flatten() {
                if let Ok(b) = fs::read(e.path()) {
                    out.push(b);
                }
            }
        }
        out
    }

    /// Drop a raw RFC 5322 message into the user's Maildir/new (tmp + rename).
    pub fn drop_message(&self, user: &str, name: &str, raw: &[u8]) -> io::Result<()> {
        let md = self.maildir(user);
        fs::write(md.join("tmp").join(name), raw)?;
        fs::rename(md.join("tmp").join(name), md.join("new").join(name))
    }

    /// Some("451 4.3.0 busy") -> every MAIL FROM gets that reply; None -> normal.
    pub fn set_smtp_failure(&self, reply: Option<&str>) -> io::Result<()> {
        let f = self.dir.join("smtp.fail");
        match reply {
            Some(r) => fs::write(f, r),
            None => fs::remove_file(f).or(Ok(())),
        }
    }

    pub fn dovecot_log(&self) -> String {
        fs::read_to_string(self.dir.join("dovecot.log")).unwrap_or_default()
    }
}

impl Drop for MailServers {
    fn drop(&mut self) {
        kill_group(&mut self.smtp, "TERM");
        kill_group(&mut self.dovecot, "TERM");
        if std::env::var_os("MAILTEST_KEEP").is_none() {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}
