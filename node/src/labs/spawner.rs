//! Starting lab processes from one thread that lives as long as the node.
//!
//! A sandbox runs with `--die-with-parent`, so that a node that crashes takes its labs with it.
//! That is `PR_SET_PDEATHSIG`, which follows the *thread* that forked the process, not the
//! process: a lab forked from a pool thread (tokio's blocking pool retires idle threads after
//! ten seconds) would be killed when that thread retires. Every lab is therefore forked from
//! this one thread, which ends only with the process.

use std::io;
use std::process::{Child, Command};
use std::sync::mpsc::{Sender, SyncSender, channel, sync_channel};
use std::sync::{Mutex, OnceLock};

type Job = (Command, SyncSender<io::Result<Child>>);

static SPAWNER: OnceLock<Mutex<Sender<Job>>> = OnceLock::new();

fn spawner() -> io::Result<&'static Mutex<Sender<Job>>> {
    if let Some(s) = SPAWNER.get() {
        return Ok(s);
    }
    let (tx, rx) = channel::<Job>();
    std::thread::Builder::new()
        .name("lab-spawner".into())
        .spawn(move || {
            for (mut command, reply) in rx {
                let _ = reply.send(command.spawn());
            }
        })?;
    // Two first callers at once: one thread's sender wins, the other thread ends unused.
    Ok(SPAWNER.get_or_init(|| Mutex::new(tx)))
}

/// Spawns `command` from the spawner thread.
pub fn spawn(command: Command) -> io::Result<Child> {
    let (reply, answer) = sync_channel(1);
    spawner()?
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .send((command, reply))
        .map_err(|_| io::Error::other("the lab spawner thread has ended"))?;
    answer
        .recv()
        .map_err(|_| io::Error::other("the lab spawner thread has ended"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn children_outlive_the_thread_that_asked_for_them() {
        // PR_SET_PDEATHSIG of the asking thread would kill `sleep` when the thread ends.
        let child = std::thread::spawn(|| {
            let mut c = Command::new("setpriv");
            c.args([
                "--pdeathsig",
                "KILL",
                "sh",
                "-c",
                "echo armed; exec sleep 5",
            ])
            .stdout(std::process::Stdio::piped());
            let mut child = spawn(c).expect("spawns");
            // The asking thread ends only once the child's death signal is armed.
            let mut line = String::new();
            std::io::BufRead::read_line(
                &mut std::io::BufReader::new(child.stdout.as_mut().expect("stdout")),
                &mut line,
            )
            .expect("reads");
            assert_eq!(line.trim(), "armed");
            child
        })
        .join()
        .expect("the asking thread ends");
        let mut child = child;
        // The death signal, were it coming, follows the thread's exit within microseconds:
        // give it a generous second to show.
        let until = std::time::Instant::now() + std::time::Duration::from_secs(1);
        while std::time::Instant::now() < until {
            assert!(
                child.try_wait().expect("waits").is_none(),
                "the child died with the thread that asked for it"
            );
            std::thread::yield_now();
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}
