//! `flinkgate::flink::memory` against Flink itself: every configuration here
//! also goes through Flink's `BashJavaUtils GET_TM_RESOURCE_PARAMS` /
//! `GET_JM_RESOURCE_PARAMS` (what Flink's start scripts run to size a
//! process), and the Rust model must print the same bytes for every component
//! Flink prints, and fail exactly when Flink fails.
//!
//! Flink comes from the distribution `hack/flink/flink fetch` puts in
//! `${FLINKGATE_CACHE:-~/.cache/flinkgate}/flink-<flink.version of
//! hack/flink/pom.xml>` (or `$FLINKGATE_FLINK_DIST`), Java from
//! `$JAVA_HOME/bin/java` or `java` on PATH (a JDK: the driver below runs as a
//! single-file source program). Without them the test only prints a note,
//! unless `CI=true`, where it fails.
//!
//! All cases run in one JVM: a small driver calls `BashJavaUtils.main` once per
//! case with `-c <empty config dir> -D key=value...`.

mod common;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use flinkgate::flink::memory::{
    self, JobManagerMemory, MemoryModelError, SizedBy, TaskManagerMemory,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Tm,
    Jm,
}

/// What a hand-written case is about; Flink has to agree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Runs(SizedBy),
    Refused,
    NotConfigured,
    /// Generated cases: whatever Flink says.
    Any,
}

struct Case {
    name: String,
    kind: Kind,
    conf: Vec<(String, String)>,
    expect: Expect,
}

fn case(name: &str, kind: Kind, expect: Expect, pairs: &[(&str, &str)]) -> Case {
    Case {
        name: name.to_string(),
        kind,
        conf: pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        expect,
    }
}

fn handpicked() -> Vec<Case> {
    use Expect::*;
    use Kind::*;
    use SizedBy::*;
    vec![
        // TaskManager: the three ways.
        case(
            "tm process 1728m",
            Tm,
            Runs(TotalProcess),
            &[("taskmanager.memory.process.size", "1728m")],
        ),
        case(
            "tm process 4g",
            Tm,
            Runs(TotalProcess),
            &[("taskmanager.memory.process.size", "4g")],
        ),
        case(
            "tm process 20g, overhead at max",
            Tm,
            Runs(TotalProcess),
            &[("taskmanager.memory.process.size", "20g")],
        ),
        case(
            "tm flink 1280m",
            Tm,
            Runs(TotalFlink),
            &[("taskmanager.memory.flink.size", "1280m")],
        ),
        case(
            "tm task heap + managed",
            Tm,
            Runs(FineGrained),
            &[
                ("taskmanager.memory.task.heap.size", "512m"),
                ("taskmanager.memory.managed.size", "512m"),
            ],
        ),
        case(
            "tm task heap + managed + odd bytes",
            Tm,
            Runs(FineGrained),
            &[
                ("taskmanager.memory.task.heap.size", "536870913"),
                ("taskmanager.memory.managed.size", "123456789b"),
                ("taskmanager.memory.task.off-heap.size", "7 kb"),
            ],
        ),
        case(
            "tm process with flink size",
            Tm,
            Runs(TotalFlink),
            &[
                ("taskmanager.memory.process.size", "1600m"),
                ("taskmanager.memory.flink.size", "1g"),
            ],
        ),
        case(
            "tm flink + task heap, network left over",
            Tm,
            Runs(TotalFlink),
            &[
                ("taskmanager.memory.flink.size", "3g"),
                ("taskmanager.memory.task.heap.size", "1g"),
            ],
        ),
        case(
            "tm flink + task heap, managed fraction leaves no room",
            Tm,
            Refused,
            &[
                ("taskmanager.memory.flink.size", "2g"),
                ("taskmanager.memory.task.heap.size", "1g"),
            ],
        ),
        case(
            "tm explicit network range and fractions",
            Tm,
            Runs(TotalProcess),
            &[
                ("taskmanager.memory.process.size", "3g"),
                ("taskmanager.memory.network.min", "100m"),
                ("taskmanager.memory.network.max", "200m"),
                ("taskmanager.memory.network.fraction", "0.15"),
                ("taskmanager.memory.managed.fraction", "0.25"),
            ],
        ),
        case(
            "tm overhead fraction and range",
            Tm,
            Runs(TotalProcess),
            &[
                ("taskmanager.memory.process.size", "6g"),
                ("taskmanager.memory.jvm-overhead.fraction", "0.2"),
                ("taskmanager.memory.jvm-overhead.min", "256m"),
                ("taskmanager.memory.jvm-overhead.max", "2g"),
                ("taskmanager.memory.jvm-metaspace.size", "512m"),
            ],
        ),
        case(
            "tm deprecated network keys",
            Tm,
            Runs(TotalProcess),
            &[
                ("taskmanager.memory.process.size", "2g"),
                ("taskmanager.network.memory.fraction", "0.3"),
                ("taskmanager.network.memory.max", "300m"),
            ],
        ),
        case(
            "tm legacy numberOfBuffers",
            Tm,
            Runs(TotalProcess),
            &[
                ("taskmanager.memory.process.size", "2g"),
                ("taskmanager.network.numberOfBuffers", "4096"),
                ("taskmanager.memory.segment-size", "64kb"),
            ],
        ),
        case(
            "tm legacy heap.size",
            Tm,
            Runs(TotalFlink),
            &[("taskmanager.heap.size", "1536m")],
        ),
        case(
            "tm legacy heap.mb",
            Tm,
            Runs(TotalFlink),
            &[("taskmanager.heap.mb", "1024")],
        ),
        case(
            "tm deprecated managed key",
            Tm,
            Runs(TotalProcess),
            &[
                ("taskmanager.memory.process.size", "2g"),
                ("taskmanager.memory.size", "300m"),
            ],
        ),
        case(
            "tm slots and cpu",
            Tm,
            Runs(TotalProcess),
            &[
                ("taskmanager.memory.process.size", "2g"),
                ("taskmanager.numberOfTaskSlots", "4"),
                ("taskmanager.cpu.cores", "2.5"),
            ],
        ),
        case(
            "tm broken fraction never read",
            Tm,
            Runs(TotalProcess),
            &[
                ("taskmanager.memory.process.size", "2g"),
                ("taskmanager.memory.managed.size", "100m"),
                ("taskmanager.memory.managed.fraction", "lots"),
            ],
        ),
        case(
            "tm managed fraction on a decimal tie",
            Tm,
            Runs(TotalFlink),
            // Double.toString gives 0.6995620727539062 (even digit), not
            // ...063: managed memory is 3004596223 bytes, one below exact.
            &[
                ("taskmanager.memory.flink.size", "4g"),
                ("taskmanager.memory.managed.fraction", "0.69956207275390625"),
            ],
        ),
        // TaskManager: what Flink refuses.
        case("tm nothing", Tm, NotConfigured, &[]),
        case(
            "tm only task heap",
            Tm,
            NotConfigured,
            &[("taskmanager.memory.task.heap.size", "1g")],
        ),
        case(
            "tm only managed",
            Tm,
            NotConfigured,
            &[("taskmanager.memory.managed.size", "1g")],
        ),
        case(
            "tm process 64m",
            Tm,
            Refused,
            &[("taskmanager.memory.process.size", "64m")],
        ),
        case(
            "tm process 640m",
            Tm,
            Refused,
            &[("taskmanager.memory.process.size", "640m")],
        ),
        case(
            "tm task heap above flink",
            Tm,
            Refused,
            &[
                ("taskmanager.memory.flink.size", "1g"),
                ("taskmanager.memory.task.heap.size", "1g"),
            ],
        ),
        case(
            "tm left-over network below min",
            Tm,
            Refused,
            &[
                ("taskmanager.memory.flink.size", "1g"),
                ("taskmanager.memory.task.heap.size", "512m"),
                ("taskmanager.memory.managed.size", "250m"),
            ],
        ),
        case(
            "tm left-over overhead above max",
            Tm,
            Refused,
            &[
                ("taskmanager.memory.process.size", "2500m"),
                ("taskmanager.memory.flink.size", "1g"),
            ],
        ),
        case(
            "tm conflicting explicit sizes",
            Tm,
            Refused,
            &[
                ("taskmanager.memory.process.size", "2g"),
                ("taskmanager.memory.task.heap.size", "1g"),
                ("taskmanager.memory.managed.size", "1g"),
            ],
        ),
        case(
            "tm network min above max",
            Tm,
            Refused,
            &[
                ("taskmanager.memory.process.size", "2g"),
                ("taskmanager.memory.network.min", "512m"),
                ("taskmanager.memory.network.max", "256m"),
            ],
        ),
        case(
            "tm fraction 1",
            Tm,
            Refused,
            &[
                ("taskmanager.memory.process.size", "2g"),
                ("taskmanager.memory.jvm-overhead.fraction", "1"),
            ],
        ),
        case(
            "tm kubernetes units",
            Tm,
            Refused,
            &[("taskmanager.memory.process.size", "2Gi")],
        ),
        case(
            "tm legacy buffers mismatch",
            Tm,
            Refused,
            &[
                ("taskmanager.memory.flink.size", "1g"),
                ("taskmanager.memory.task.heap.size", "512m"),
                ("taskmanager.memory.managed.size", "100m"),
                ("taskmanager.network.numberOfBuffers", "4096"),
            ],
        ),
        case(
            "tm zero slots",
            Tm,
            Refused,
            &[
                ("taskmanager.memory.process.size", "2g"),
                ("taskmanager.numberOfTaskSlots", "0"),
            ],
        ),
        // JobManager: the three ways.
        case(
            "jm process 1600m",
            Jm,
            Runs(TotalProcess),
            &[("jobmanager.memory.process.size", "1600m")],
        ),
        case(
            "jm process 10g",
            Jm,
            Runs(TotalProcess),
            &[("jobmanager.memory.process.size", "10g")],
        ),
        case(
            "jm flink 1g",
            Jm,
            Runs(TotalFlink),
            &[("jobmanager.memory.flink.size", "1g")],
        ),
        case(
            "jm heap only",
            Jm,
            Runs(FineGrained),
            &[("jobmanager.memory.heap.size", "1g")],
        ),
        case(
            "jm heap + flink",
            Jm,
            Runs(FineGrained),
            &[
                ("jobmanager.memory.heap.size", "1g"),
                ("jobmanager.memory.flink.size", "1500m"),
            ],
        ),
        case(
            "jm heap + process",
            Jm,
            Runs(FineGrained),
            &[
                ("jobmanager.memory.heap.size", "1g"),
                ("jobmanager.memory.process.size", "1700m"),
            ],
        ),
        case(
            "jm legacy heap.size",
            Jm,
            Runs(FineGrained),
            &[("jobmanager.heap.size", "2g")],
        ),
        case(
            "jm legacy heap.mb",
            Jm,
            Runs(FineGrained),
            &[("jobmanager.heap.mb", "700")],
        ),
        case(
            "jm direct limit and overhead",
            Jm,
            Runs(TotalProcess),
            &[
                ("jobmanager.memory.process.size", "3g"),
                ("jobmanager.memory.enable-jvm-direct-memory-limit", "true"),
                ("jobmanager.memory.jvm-overhead.fraction", "0.25"),
                ("jobmanager.memory.off-heap.size", "300m"),
            ],
        ),
        case(
            "jm heap fills flink, no off-heap",
            Jm,
            Runs(FineGrained),
            &[
                ("jobmanager.memory.heap.size", "1g"),
                ("jobmanager.memory.flink.size", "1g"),
            ],
        ),
        // JobManager: what Flink refuses.
        case("jm nothing", Jm, NotConfigured, &[]),
        case(
            "jm process 500m",
            Jm,
            Refused,
            &[("jobmanager.memory.process.size", "500m")],
        ),
        case(
            "jm heap + off-heap != flink",
            Jm,
            Refused,
            &[
                ("jobmanager.memory.heap.size", "1g"),
                ("jobmanager.memory.off-heap.size", "1g"),
                ("jobmanager.memory.flink.size", "1g"),
            ],
        ),
        case(
            "jm heap above flink",
            Jm,
            Refused,
            &[
                ("jobmanager.memory.heap.size", "2g"),
                ("jobmanager.memory.flink.size", "1g"),
            ],
        ),
        case(
            "jm heap + process overhead out of range",
            Jm,
            Refused,
            &[
                ("jobmanager.memory.heap.size", "1g"),
                ("jobmanager.memory.process.size", "4g"),
            ],
        ),
        case(
            "jm flink equal to off-heap",
            Jm,
            Refused,
            &[("jobmanager.memory.flink.size", "128m")],
        ),
        case(
            "jm flink below off-heap",
            Jm,
            Refused,
            &[("jobmanager.memory.flink.size", "100m")],
        ),
        case(
            "jm direct limit not a boolean",
            Jm,
            Refused,
            &[
                ("jobmanager.memory.heap.size", "1g"),
                ("jobmanager.memory.enable-jvm-direct-memory-limit", "yes"),
            ],
        ),
    ]
}

/// splitmix64: reproducible without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }

    fn size(&mut self, max_mib: u64) -> String {
        match self.below(10) {
            0 => format!("{}", self.below(max_mib << 20)),
            1 => format!("{}k", self.below(max_mib << 10)),
            2 => format!("{}g", self.below((max_mib >> 10).max(1)) + 1),
            4 => format!("{}", self.below(max_mib << 20)),
            3 => self
                .pick(&["0", "2Gi", "1.5g", "-5m", "99999999999999t", " 64 mb"])
                .to_string(),
            _ => format!("{}m", self.below(max_mib)),
        }
    }

    fn fraction(&mut self) -> String {
        match self.below(10) {
            // Any float in [0, 1): exercises MemorySize.multiply's rounding.
            8 | 9 => format!("{}", f32::from_bits((self.next() as u32) % 0x3f80_0000)),
            0 => format!("0.{:03}", self.below(1000)),
            1 => self
                .pick(&["0", "1", "-0.1", "NaN", "0.5f", "1e-1", ".3", "x"])
                .to_string(),
            _ => self
                .pick(&[
                    "0.05", "0.1", "0.15", "0.2", "0.25", "0.3", "0.4", "0.6", "0.9", "0.99", "0.7",
                ])
                .to_string(),
        }
    }
}

fn generated(seed: u64, tm_count: usize, jm_count: usize) -> Vec<Case> {
    let mut rng = Rng(seed);
    let mut cases = Vec::new();
    for i in 0..tm_count {
        let mut conf = Vec::new();
        let mut set = |k: &str, v: String| conf.push((k.to_string(), v));
        // Bias towards one sizing way, with extra sizes now and then.
        let way = rng.below(4);
        if way == 0 || rng.chance(15) {
            set("taskmanager.memory.process.size", rng.size(16384));
        }
        if way == 1 || rng.chance(15) {
            set("taskmanager.memory.flink.size", rng.size(12288));
        }
        if way == 2 || rng.chance(20) {
            set("taskmanager.memory.task.heap.size", rng.size(4096));
        }
        if way == 2 || rng.chance(20) {
            let key = if rng.chance(20) {
                "taskmanager.memory.size"
            } else {
                "taskmanager.memory.managed.size"
            };
            set(key, rng.size(4096));
        }
        if way == 3 {
            let key = rng.pick(&["taskmanager.heap.size", "taskmanager.heap.mb"]);
            let value = if key.ends_with("mb") {
                format!("{}", rng.below(8192) as i64 - 100)
            } else {
                rng.size(8192)
            };
            set(key, value);
        }
        for (key, percent, max) in [
            ("taskmanager.memory.framework.heap.size", 10, 512),
            ("taskmanager.memory.framework.off-heap.size", 10, 512),
            ("taskmanager.memory.task.off-heap.size", 15, 1024),
            ("taskmanager.memory.jvm-metaspace.size", 10, 1024),
            ("taskmanager.memory.jvm-overhead.min", 15, 1024),
            ("taskmanager.memory.jvm-overhead.max", 15, 4096),
            ("taskmanager.memory.network.min", 15, 1024),
            ("taskmanager.memory.network.max", 15, 4096),
            ("taskmanager.network.memory.min", 5, 1024),
        ] {
            if rng.chance(percent) {
                set(key, rng.size(max));
            }
        }
        for (key, percent) in [
            ("taskmanager.memory.managed.fraction", 25),
            ("taskmanager.memory.network.fraction", 25),
            ("taskmanager.network.memory.fraction", 5),
            ("taskmanager.memory.jvm-overhead.fraction", 25),
        ] {
            if rng.chance(percent) {
                set(key, rng.fraction());
            }
        }
        if rng.chance(10) {
            set(
                "taskmanager.network.numberOfBuffers",
                format!("{}", rng.below(20000) as i64 - 100),
            );
            if rng.chance(50) {
                set(
                    "taskmanager.memory.segment-size",
                    rng.pick(&["4096", "8k", "32kb", "1m", "3000", "48k"])
                        .to_string(),
                );
            }
        }
        if rng.chance(10) {
            set(
                "taskmanager.numberOfTaskSlots",
                rng.pick(&["0", "1", "4", "-1", "x"]).to_string(),
            );
        }
        if rng.chance(5) {
            set(
                "taskmanager.cpu.cores",
                rng.pick(&["0", "0.5", "2", "-1", "NaN"]).to_string(),
            );
        }
        cases.push(Case {
            name: format!("generated tm #{i}"),
            kind: Kind::Tm,
            conf,
            expect: Expect::Any,
        });
    }
    for i in 0..jm_count {
        let mut conf = Vec::new();
        let mut set = |k: &str, v: String| conf.push((k.to_string(), v));
        let way = rng.below(4);
        if way == 0 || rng.chance(20) {
            set("jobmanager.memory.process.size", rng.size(8192));
        }
        if way == 1 || rng.chance(20) {
            set("jobmanager.memory.flink.size", rng.size(6144));
        }
        if way == 2 || rng.chance(20) {
            set("jobmanager.memory.heap.size", rng.size(4096));
        }
        if way == 3 {
            let key = rng.pick(&["jobmanager.heap.size", "jobmanager.heap.mb"]);
            let value = if key.ends_with("mb") {
                format!("{}", rng.below(8192) as i64 - 100)
            } else {
                rng.size(8192)
            };
            set(key, value);
        }
        for (key, percent, max) in [
            ("jobmanager.memory.off-heap.size", 30, 1024),
            ("jobmanager.memory.jvm-metaspace.size", 10, 1024),
            ("jobmanager.memory.jvm-overhead.min", 15, 1024),
            ("jobmanager.memory.jvm-overhead.max", 15, 4096),
        ] {
            if rng.chance(percent) {
                set(key, rng.size(max));
            }
        }
        if rng.chance(25) {
            set("jobmanager.memory.jvm-overhead.fraction", rng.fraction());
        }
        if rng.chance(15) {
            set(
                "jobmanager.memory.enable-jvm-direct-memory-limit",
                rng.pick(&["true", "false", "TRUE", "1"]).to_string(),
            );
        }
        cases.push(Case {
            name: format!("generated jm #{i}"),
            kind: Kind::Jm,
            conf,
            expect: Expect::Any,
        });
    }
    cases
}

// ---------------------------------------------------------------------------
// Running Flink.

struct Flink {
    java: PathBuf,
    lib: PathBuf,
}

/// `<flink.version>` of hack/flink/pom.xml, which names the distribution
/// `hack/flink/flink fetch` unpacks.
fn flink_version() -> String {
    let pom = Path::new(env!("CARGO_MANIFEST_DIR")).join("hack/flink/pom.xml");
    std::fs::read_to_string(pom)
        .ok()
        .and_then(|text| {
            let start = text.find("<flink.version>")? + "<flink.version>".len();
            let end = start + text[start..].find("</flink.version>")?;
            Some(text[start..end].trim().to_string())
        })
        .unwrap_or_else(|| "1.20.5".to_string())
}

fn locate_flink() -> Result<Flink, String> {
    let explicit = std::env::var_os("FLINKGATE_FLINK_DIST").map(PathBuf::from);
    let dist = explicit
        .clone()
        .unwrap_or_else(|| common::cache_root().join(format!("flink-{}", flink_version())));
    let lib = dist.join("lib");
    if explicit.is_none() && !lib.exists() {
        // The same idempotent fetch the e2e tests use (Maven, cached), so
        // this test needs no other test to have run first.
        let fetch = Path::new(env!("CARGO_MANIFEST_DIR")).join("hack/flink/flink");
        let ok = Command::new(&fetch)
            .arg("fetch")
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            return Err(format!("{} fetch failed", fetch.display()));
        }
    }
    let has_runtime = std::fs::read_dir(&lib)
        .map(|entries| {
            entries.flatten().any(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with("flink-runtime-")
                    || e.file_name().to_string_lossy().starts_with("flink-dist")
            })
        })
        .unwrap_or(false);
    if !has_runtime {
        return Err(format!(
            "no Flink distribution at {} (run hack/flink/flink fetch or set FLINKGATE_FLINK_DIST)",
            dist.display()
        ));
    }
    let java = common::java()?;
    Ok(Flink { java, lib })
}

const DRIVER: &str = r#"
import java.io.*;
import java.nio.charset.StandardCharsets;
import java.nio.file.*;
import java.util.*;

public class MemoryModelDriver {
    public static void main(String[] a) throws Exception {
        PrintStream out = System.out;
        for (String line : Files.readAllLines(Paths.get(a[1]), StandardCharsets.UTF_8)) {
            if (line.isEmpty()) continue;
            String[] f = line.split("\t", -1);
            List<String> args = new ArrayList<>(Arrays.asList(f[1], "-c", a[0]));
            for (int i = 2; i < f.length; i++) { args.add("-D"); args.add(f[i]); }
            ByteArrayOutputStream buf = new ByteArrayOutputStream();
            String result = "OK";
            System.setOut(new PrintStream(buf, true, "UTF-8"));
            try {
                org.apache.flink.runtime.util.bash.BashJavaUtils.main(args.toArray(new String[0]));
            } catch (Throwable t) {
                result = "ERR " + t.getClass().getName() + ": " + String.valueOf(t.getMessage());
            } finally {
                System.setOut(out);
            }
            out.println("CASE\t" + f[0] + "\t" + result.replace('\n', ' ').replace('\t', ' '));
            for (String l : buf.toString("UTF-8").split("\n")) {
                if (l.startsWith("BASH_JAVA_UTILS_EXEC_RESULT:")) {
                    out.println("LINE\t" + f[0] + "\t" + l.substring("BASH_JAVA_UTILS_EXEC_RESULT:".length()));
                }
            }
        }
        out.flush();
    }
}
"#;

#[derive(Debug, Default)]
struct FlinkResult {
    error: Option<String>,
    lines: Vec<String>,
}

fn run_flink(flink: &Flink, cases: &[Case]) -> Vec<FlinkResult> {
    let dir = tempfile::tempdir().expect("temp dir");
    let conf_dir = dir.path().join("conf");
    std::fs::create_dir(&conf_dir).expect("conf dir");
    std::fs::write(conf_dir.join("config.yaml"), "").expect("config.yaml");
    let driver = dir.path().join("MemoryModelDriver.java");
    std::fs::write(&driver, DRIVER).expect("driver");
    let mut input = String::new();
    for (i, c) in cases.iter().enumerate() {
        let command = match c.kind {
            Kind::Tm => "GET_TM_RESOURCE_PARAMS",
            Kind::Jm => "GET_JM_RESOURCE_PARAMS",
        };
        let _ = write!(input, "{i}\t{command}");
        for (k, v) in &c.conf {
            assert!(!v.contains(['\t', '\n']), "case values are tab-separated");
            let _ = write!(input, "\t{k}={v}");
        }
        input.push('\n');
    }
    let cases_file = dir.path().join("cases.tsv");
    std::fs::write(&cases_file, input).expect("cases file");

    let out = Command::new(&flink.java)
        .arg("-cp")
        .arg(format!("{}/*", flink.lib.display()))
        .arg(&driver)
        .arg(&conf_dir)
        .arg(&cases_file)
        // Would override the legacy heap keys; the webhook never sees them.
        .env_remove("FLINK_TM_HEAP")
        .env_remove("FLINK_JM_HEAP")
        .env_remove("FLINK_CONF_DIR")
        .output()
        .expect("java runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut results: Vec<FlinkResult> = (0..cases.len()).map(|_| FlinkResult::default()).collect();
    let mut seen = vec![false; cases.len()];
    for line in stdout.lines() {
        let mut fields = line.splitn(3, '\t');
        let (Some(tag), Some(id), Some(rest)) = (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let Ok(i) = id.parse::<usize>() else { continue };
        let Some(r) = results.get_mut(i) else {
            continue;
        };
        match tag {
            "CASE" => {
                seen[i] = true;
                if rest != "OK" {
                    r.error = Some(rest.trim_start_matches("ERR ").to_string());
                }
            }
            "LINE" => r.lines.push(rest.to_string()),
            _ => {}
        }
    }
    assert!(
        seen.iter().all(|s| *s),
        "the Flink driver did not answer every case (exit {:?}):\n{}\n{}",
        out.status,
        stdout.lines().take(40).collect::<Vec<_>>().join("\n"),
        String::from_utf8_lossy(&out.stderr)
            .lines()
            .take(40)
            .collect::<Vec<_>>()
            .join("\n")
    );
    results
}

type Flags = BTreeMap<String, String>;

/// The two lines BashJavaUtils prints: JVM flags and `-D key=value` pairs.
fn parse_flink_output(lines: &[String]) -> Result<(Flags, Flags), String> {
    let [jvm, dynamic] = lines else {
        return Err(format!("expected two lines, got {lines:?}"));
    };
    let mut flags = BTreeMap::new();
    for token in jvm.split_whitespace() {
        for prefix in [
            "-Xmx",
            "-Xms",
            "-XX:MaxDirectMemorySize=",
            "-XX:MaxMetaspaceSize=",
        ] {
            if let Some(v) = token.strip_prefix(prefix) {
                flags.insert(prefix.to_string(), v.to_string());
            }
        }
    }
    let mut dynamic_configs = BTreeMap::new();
    let mut tokens = dynamic.split_whitespace();
    while let Some(t) = tokens.next() {
        if t == "-D"
            && let Some(kv) = tokens.next()
            && let Some((k, v)) = kv.split_once('=')
        {
            dynamic_configs.insert(k.to_string(), v.to_string());
        }
    }
    Ok((flags, dynamic_configs))
}

fn bytes_of(map: &BTreeMap<String, String>, key: &str) -> Option<u64> {
    map.get(key)?.trim_end_matches('b').parse().ok()
}

fn compare_tm(m: &TaskManagerMemory, flink: &FlinkResult) -> Vec<String> {
    let (flags, d) = match parse_flink_output(&flink.lines) {
        Ok(v) => v,
        Err(e) => return vec![e],
    };
    let mut diffs = Vec::new();
    let mut check = |what: &str, flink: Option<u64>, ours: u64| {
        if flink != Some(ours) {
            diffs.push(format!("{what}: Flink {flink:?}, ours {ours}"));
        }
    };
    check("-Xmx", bytes_of(&flags, "-Xmx"), m.jvm_heap());
    check("-Xms", bytes_of(&flags, "-Xms"), m.jvm_heap());
    check(
        "-XX:MaxDirectMemorySize",
        bytes_of(&flags, "-XX:MaxDirectMemorySize="),
        m.jvm_direct(),
    );
    check(
        "-XX:MaxMetaspaceSize",
        bytes_of(&flags, "-XX:MaxMetaspaceSize="),
        m.jvm_metaspace,
    );
    check(
        "framework heap",
        bytes_of(&d, "taskmanager.memory.framework.heap.size"),
        m.framework_heap,
    );
    check(
        "task heap",
        bytes_of(&d, "taskmanager.memory.task.heap.size"),
        m.task_heap,
    );
    check(
        "framework off-heap",
        bytes_of(&d, "taskmanager.memory.framework.off-heap.size"),
        m.framework_off_heap,
    );
    check(
        "task off-heap",
        bytes_of(&d, "taskmanager.memory.task.off-heap.size"),
        m.task_off_heap,
    );
    check(
        "network (min)",
        bytes_of(&d, "taskmanager.memory.network.min"),
        m.network,
    );
    check(
        "network (max)",
        bytes_of(&d, "taskmanager.memory.network.max"),
        m.network,
    );
    check(
        "managed",
        bytes_of(&d, "taskmanager.memory.managed.size"),
        m.managed,
    );
    check(
        "metaspace",
        bytes_of(&d, "taskmanager.memory.jvm-metaspace.size"),
        m.jvm_metaspace,
    );
    check(
        "overhead (min)",
        bytes_of(&d, "taskmanager.memory.jvm-overhead.min"),
        m.jvm_overhead,
    );
    check(
        "overhead (max)",
        bytes_of(&d, "taskmanager.memory.jvm-overhead.max"),
        m.jvm_overhead,
    );
    let slots = d
        .get("taskmanager.numberOfTaskSlots")
        .and_then(|s| s.parse::<i32>().ok());
    if slots != Some(m.task_slots) {
        diffs.push(format!("slots: Flink {slots:?}, ours {}", m.task_slots));
    }
    // Flink prints the cores cut to 8 decimals.
    let cpu = d
        .get("taskmanager.cpu.cores")
        .and_then(|s| s.parse::<f64>().ok());
    if !cpu.is_some_and(|c| (c - m.cpu_cores).abs() <= 1e-8 * m.cpu_cores.max(1.0)) {
        diffs.push(format!("cpu cores: Flink {cpu:?}, ours {}", m.cpu_cores));
    }
    diffs
}

fn compare_jm(m: &JobManagerMemory, flink: &FlinkResult) -> Vec<String> {
    let (flags, d) = match parse_flink_output(&flink.lines) {
        Ok(v) => v,
        Err(e) => return vec![e],
    };
    let mut diffs = Vec::new();
    let mut check = |what: &str, flink: Option<u64>, ours: Option<u64>| {
        if flink != ours {
            diffs.push(format!("{what}: Flink {flink:?}, ours {ours:?}"));
        }
    };
    check("-Xmx", bytes_of(&flags, "-Xmx"), Some(m.jvm_heap));
    check("-Xms", bytes_of(&flags, "-Xms"), Some(m.jvm_heap));
    check(
        "-XX:MaxDirectMemorySize",
        bytes_of(&flags, "-XX:MaxDirectMemorySize="),
        m.jvm_direct_memory_limit.then_some(m.off_heap),
    );
    check(
        "-XX:MaxMetaspaceSize",
        bytes_of(&flags, "-XX:MaxMetaspaceSize="),
        Some(m.jvm_metaspace),
    );
    check(
        "heap",
        bytes_of(&d, "jobmanager.memory.heap.size"),
        Some(m.jvm_heap),
    );
    check(
        "off-heap",
        bytes_of(&d, "jobmanager.memory.off-heap.size"),
        Some(m.off_heap),
    );
    check(
        "metaspace",
        bytes_of(&d, "jobmanager.memory.jvm-metaspace.size"),
        Some(m.jvm_metaspace),
    );
    check(
        "overhead (min)",
        bytes_of(&d, "jobmanager.memory.jvm-overhead.min"),
        Some(m.jvm_overhead),
    );
    check(
        "overhead (max)",
        bytes_of(&d, "jobmanager.memory.jvm-overhead.max"),
        Some(m.jvm_overhead),
    );
    diffs
}

fn check_case(c: &Case, flink: &FlinkResult) -> Vec<String> {
    let conf: BTreeMap<String, String> = c.conf.iter().cloned().collect();
    let ours: Result<(SizedBy, Vec<String>), MemoryModelError> = match c.kind {
        Kind::Tm => memory::task_manager(&conf).map(|m| {
            let mut diffs = compare_tm(&m, flink);
            let sum = m.framework_heap
                + m.task_heap
                + m.framework_off_heap
                + m.task_off_heap
                + m.network
                + m.managed;
            if sum != m.total_flink
                || m.total_flink + m.jvm_metaspace + m.jvm_overhead != m.total_process
            {
                diffs.push(format!("totals do not add up: {m:?}"));
            }
            (m.sized_by, diffs)
        }),
        Kind::Jm => memory::job_manager(&conf).map(|m| {
            let mut diffs = compare_jm(&m, flink);
            if m.jvm_heap + m.off_heap != m.total_flink
                || m.total_flink + m.jvm_metaspace + m.jvm_overhead != m.total_process
            {
                diffs.push(format!("totals do not add up: {m:?}"));
            }
            (m.sized_by, diffs)
        }),
    };
    let mut problems = Vec::new();
    match (&flink.error, ours) {
        (None, Ok((sized_by, diffs))) => {
            problems.extend(diffs);
            match c.expect {
                Expect::Runs(expected) if expected != sized_by => problems.push(format!(
                    "sized by {sized_by:?}, the case expects {expected:?}"
                )),
                Expect::Refused | Expect::NotConfigured => {
                    problems.push(format!("the case expects {:?} but Flink runs it", c.expect))
                }
                _ => {}
            }
        }
        (Some(flink_error), Err(ours)) => {
            let flink_not_configured = flink_error.contains("need to be configured explicitly");
            if flink_not_configured != ours.is_not_configured() {
                problems.push(format!(
                    "both refuse, but differently: Flink: {flink_error}; ours: {ours}"
                ));
            }
            match c.expect {
                Expect::Runs(_) => {
                    problems.push(format!("the case expects it to run; Flink: {flink_error}"))
                }
                Expect::NotConfigured if !flink_not_configured => problems.push(format!(
                    "the case expects 'not configured'; Flink: {flink_error}"
                )),
                Expect::Refused if flink_not_configured => {
                    problems.push(format!("the case expects a refusal, Flink: {flink_error}"))
                }
                _ => {}
            }
        }
        (None, Err(ours)) => problems.push(format!("Flink runs it, we refuse: {ours}")),
        (Some(flink_error), Ok(_)) => {
            problems.push(format!("Flink refuses ({flink_error}), we accept"))
        }
    }
    problems
}

#[test]
fn memory_model_matches_flink() {
    let flink = match locate_flink() {
        Ok(f) => f,
        Err(why) => return common::skip_unless_ci("the comparison with Flink", &why),
    };
    let mut cases = handpicked();
    let handpicked_count = cases.len();
    cases.extend(generated(0x5eed_f11c, 1000, 400));

    let started = Instant::now();
    let results = run_flink(&flink, &cases);
    let flink_time = started.elapsed();

    let mut failures = String::new();
    let mut runs = 0;
    for (c, r) in cases.iter().zip(&results) {
        if r.error.is_none() {
            runs += 1;
        }
        let problems = check_case(c, r);
        if !problems.is_empty() {
            let _ = writeln!(failures, "{} {:?}:", c.name, c.conf);
            for p in problems {
                let _ = writeln!(failures, "    {p}");
            }
        }
    }
    eprintln!(
        "{} cases ({handpicked_count} hand-written), {runs} run by Flink, the rest refused; Flink took {:.1?}",
        cases.len(),
        flink_time
    );
    assert!(
        failures.is_empty(),
        "the model disagrees with Flink:\n{failures}"
    );
    // Generated cases must exercise both outcomes to mean anything.
    assert!(
        runs > cases.len() / 5 && runs < cases.len() * 4 / 5,
        "{runs} of {} run",
        cases.len()
    );
}
