//! `transitd-bench signatures`: what payload signatures cost a rule table, in one run on a
//! ClassBench rule set and trace made into frames.
//!
//! Each trace header becomes a frame (Ethernet, IPv4, its TCP or UDP header, 32 bytes of
//! data). Two tables answer every frame: (a) the ClassBench rules alone; (b) N signature
//! rules in front of them, each a source port (taken from a trace header, so that many
//! frames pass the header test and the byte test has to say no) and a payload test: a slice
//! compare, `contains` or `matches`. Signature `i`'s own header's frame carries its payload.
//! (b) must answer every frame with the first signature the reference interpreter selects,
//! or else with (a)'s rule moved by N; the run fails otherwise, and when no frame or every
//! frame is a signature's. (c), the baseline: the reference interpreter over the signatures,
//! then (a).
//!
//! With `--shared-header` every signature tests only its transport (`udp and ...`), as a
//! list of signatures behind one header test is: every frame passes about half of them, and
//! all of their byte tests but its own say no.

use classifier::classbench::{self, Header};
use classifier::{Dim, Expr, Key, LinearScan, RuleTable, parse};

use crate::measure::Runs;

/// Options of `signatures`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    files: crate::classify::ClassBenchFiles,
    /// Signature rules in front of the ClassBench rules.
    #[arg(long, default_value_t = 100)]
    signatures: usize,
    /// Timed runs.
    #[arg(long, default_value_t = 11, value_parser = crate::at_least_one)]
    runs: usize,
    /// Every signature tests its transport alone, not a source port too.
    #[arg(long)]
    shared_header: bool,
}

/// Data bytes in every frame.
const DATA: usize = 32;

/// Runs `signatures`.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let (rules, trace) = args.files.load()?;
    let tcp_or_udp: Vec<usize> = (0..trace.len()).filter(|&i| matches!(trace[i].proto, 6 | 17)).collect();
    anyhow::ensure!(tcp_or_udp.len() >= args.signatures, "the trace has too few TCP and UDP headers");
    // Signature i is built from header `owner[i]`, spread over the trace.
    let owner: Vec<usize> = (0..args.signatures).map(|i| tcp_or_udp[i * tcp_or_udp.len() / args.signatures]).collect();
    let texts: Vec<String> =
        owner.iter().enumerate().map(|(i, &h)| signature(i, &trace[h], args.shared_header)).collect();
    let exprs: Vec<Expr> =
        texts.iter().map(|t| parse(t).map_err(|e| anyhow::anyhow!("{t}: {e}"))).collect::<Result<_, _>>()?;

    let base = classbench::boxes(&rules);
    let table_a = RuleTable::from_boxes(&base);
    // (b): the signatures, then the ClassBench rules.
    let table_b = RuleTable::build_then_boxes(&exprs, &base)?;
    let linear = LinearScan::new(&exprs);

    let mut frames: Vec<Vec<u8>> = trace.iter().map(|h| frame(h, b"x")).collect();
    for (i, &h) in owner.iter().enumerate() {
        frames[h] = frame(&trace[h], payload(i).as_bytes());
    }
    let keys: Vec<Key> = trace.iter().zip(&frames).map(|(h, f)| key(h, f)).collect();
    let n = keys.len() as u64;
    let sigs = args.signatures as u32;
    let mut selected = 0;
    for (k, f) in keys.iter().zip(&frames) {
        let expect = linear.first_match(k, f).or_else(|| table_a.first_match(k, &[]).map(|r| r + sigs));
        let got = table_b.first_match(k, f);
        anyhow::ensure!(got == expect, "the table answers {got:?}, the reference {expect:?}, for {k:?}");
        selected += usize::from(got.is_some_and(|r| r < sigs));
    }
    anyhow::ensure!(
        selected > 0 && selected < keys.len(),
        "signatures select {selected} of {n} frames: nothing measured"
    );
    // Frames that pass some signature's header test, so that its bytes are looked at.
    let header_hits = keys.iter().filter(|k| exprs.iter().any(|e| header_part_holds(e, k))).count();

    let refs: Vec<&Key> = keys.iter().collect();
    let bytes: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
    let mut out = vec![None; 64];
    // The five rows interleaved, run by run: a drift of a busy machine falls on each alike.
    let timed = Runs::interleaved(args.runs, n, 5, |row| match row {
        0 | 1 => {
            let table = if row == 0 { &table_a } else { &table_b };
            for (k, f) in keys.iter().zip(&frames) {
                std::hint::black_box(table.first_match(std::hint::black_box(k), f));
            }
        }
        2 | 3 => {
            let table = if row == 2 { &table_a } else { &table_b };
            for (k, f) in refs.chunks(64).zip(bytes.chunks(64)) {
                table.first_match_batch(std::hint::black_box(k), f, &mut out[..k.len()]);
                std::hint::black_box(&out);
            }
        }
        _ => {
            for (k, f) in keys.iter().zip(&frames) {
                let k = std::hint::black_box(k);
                std::hint::black_box(linear.first_match(k, f).or_else(|| table_a.first_match(k, &[])));
            }
        }
    });
    println!(
        "rules {} ({} rules), trace {} ({n} frames), {} signatures: {selected} frames selected by one, \
         {header_hits} pass some signature's header test (their bytes are checked)",
        args.files.rules.display(),
        rules.len(),
        args.files.trace.display(),
        args.signatures,
    );
    println!("(a) {:?}\n(b) {:?}\n", table_a.stats(), table_b.stats());
    println!("{}", Runs::header("lookup"));
    let names = [
        "(a) ClassBench rules alone, one at a time".to_string(),
        format!("(b) + {} signatures, one at a time", args.signatures),
        "(a) batches of 64".to_string(),
        "(b) batches of 64".to_string(),
        "(c) signatures by linear scan, then (a)".to_string(),
    ];
    for (runs, name) in timed.iter().zip(names) {
        println!("{}", runs.row(&name));
    }
    Ok(())
}

/// Signature `i`, on the source port and transport of `h` (the transport alone if `shared`).
fn signature(i: usize, h: &Header, shared: bool) -> String {
    let l4 = if h.proto == 6 { "tcp" } else { "udp" };
    let test = match i % 3 {
        0 => format!("{l4}.payload[0:6] == \"{}\"", &payload(i)[..6]),
        1 => format!("{l4}.payload contains \"#{i}:\""),
        _ => format!("{l4}.payload matches \"^s[a-z]{{2}}{i:03}#{i}:[0-9]+\""),
    };
    if shared { format!("{l4} and {test}") } else { format!("{l4}.srcport == {} and {test}", h.sport) }
}

/// The data of signature `i`'s own frame.
fn payload(i: usize) -> String {
    format!("sig{i:03}#{i}:12345")
}

/// `h` as an Ethernet frame with `data` (padded to [`DATA`] bytes).
fn frame(h: &Header, data: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; 14];
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    let l4_len = if h.proto == 6 { 20 } else { 8 };
    let total = 20 + l4_len + DATA;
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    ip[8] = 64;
    ip[9] = h.proto;
    ip[12..16].copy_from_slice(&h.src.to_be_bytes());
    ip[16..20].copy_from_slice(&h.dst.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&h.sport.to_be_bytes());
    f.extend_from_slice(&h.dport.to_be_bytes());
    if h.proto == 6 {
        f.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0]);
    } else {
        f.extend_from_slice(&((8 + DATA) as u16).to_be_bytes());
        f.extend_from_slice(&[0, 0]);
    }
    let mut d = data.to_vec();
    d.resize(DATA, b'.');
    f.extend_from_slice(&d);
    f
}

/// `h`'s key, with what the data plane's parser records of the frame [`frame`] builds.
fn key(h: &Header, f: &[u8]) -> Key {
    let mut k = h.key();
    k.set(Dim::EthAt, 0);
    k.set(Dim::L3At, 14);
    k.set(Dim::IpHdrLen, 20);
    k.set(Dim::IpLen, (f.len() - 14) as u32);
    k.set(Dim::L4At, 34);
    if h.proto == 6 {
        k.set(Dim::TcpHdrLen, 20);
        k.set(Dim::L4Len, DATA as u32);
    } else {
        k.set(Dim::L4Len, (8 + DATA) as u32);
    }
    k
}

/// True when `e`'s header tests (its byte tests taken as true) hold for `k`.
fn header_part_holds(e: &Expr, k: &Key) -> bool {
    fn strip(e: &Expr) -> Expr {
        match e {
            Expr::Bytes(_) => Expr::True,
            Expr::Or(t) => Expr::Or(t.iter().map(strip).collect()),
            Expr::And(t) => Expr::And(t.iter().map(strip).collect()),
            Expr::Not(i) => Expr::Not(Box::new(strip(i))),
            other => other.clone(),
        }
    }
    classifier::eval(&strip(e), k, &[])
}
