//! Kill -9 the writer mid-append, twenty times: the spool reopens without corruption and holds
//! every record whose append had returned, in order, exactly once.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use tod_agent::spool::{Spool, SpoolLimits};

const CHILD_ENV: &str = "TOD_SPOOL_CRASH_CHILD";

fn limits() -> SpoolLimits {
    SpoolLimits {
        max_bytes: 1 << 30,
        max_age_ms: i64::MAX / 4,
        segment_bytes: 64 << 10,
        sync_every_append: true,
        commit_window: std::time::Duration::ZERO,
    }
}

fn payload(seq: u64) -> Vec<u8> {
    // Varying sizes so kills land inside headers, payloads and segment rotations.
    let len = 20 + (seq * 7919 % 3000) as usize;
    let mut p = format!("record-{seq}:").into_bytes();
    p.resize(len, (seq % 251) as u8);
    p
}

/// The child: append forever, printing each sequence number once `append` has returned.
fn child(dir: &str) {
    let mut s = Spool::open(dir, limits()).expect("open");
    let mut out = std::io::stdout();
    loop {
        let seq = s.stats().next_seq;
        let got = s.append(&payload(seq), seq as i64).expect("append");
        assert_eq!(got, seq);
        use std::io::Write;
        writeln!(out, "{seq}").unwrap();
        out.flush().unwrap();
    }
}

#[test]
fn kill_nine_mid_write_twenty_times() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        return child(&dir);
    }
    let dir = std::env::temp_dir().join(format!("tod-spool-crash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let exe = std::env::current_exe().unwrap();
    let mut confirmed = 0u64; // every seq below this was reported appended
    for round in 0..20u64 {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "kill_nine_mid_write_twenty_times",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, &dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut last = None;
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(n) = line.trim().parse::<u64>() {
                    last = Some(n);
                }
            }
            last
        });
        // Let it write for a varying while, then kill it without warning.
        std::thread::sleep(Duration::from_millis(30 + (round * 37) % 120));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        if let Some(last) = reader.join().unwrap() {
            confirmed = confirmed.max(last + 1);
        }
        let s = Spool::open(&dir, limits()).expect("reopens after kill -9");
        let st = s.stats();
        assert!(
            st.next_seq >= confirmed,
            "round {round}: lost acknowledged records ({} < {confirmed})",
            st.next_seq
        );
        let all = s.read(usize::MAX).expect("every record passes its checksum");
        assert_eq!(all.len() as u64, st.next_seq, "round {round}: dense, nothing twice");
        for (i, r) in all.iter().enumerate() {
            assert_eq!(r.seq, i as u64);
            assert_eq!(r.payload, payload(r.seq), "round {round}: record {i} intact");
        }
    }
    assert!(confirmed > 100, "the child wrote something: {confirmed}");
    let _ = std::fs::remove_dir_all(&dir);
}
