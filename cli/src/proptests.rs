//! Property tests: whatever a dump file holds, the command answers without panicking.

use crate::{diff, dumpfile};
use proptest::prelude::*;

/// JSON text shaped like a dump, with figures anywhere in the i64 and u64 ranges, odd
/// names and missing fields.
fn dump_like() -> impl Strategy<Value = String> {
    let figure = prop_oneof![
        any::<i64>().prop_map(|v| v.to_string()),
        any::<u64>().prop_map(|v| v.to_string()),
        Just("0".to_string()),
    ];
    let name = any::<String>().prop_map(|s| serde_json::Value::String(s).to_string());
    let thread = (name.clone(), figure.clone())
        .prop_map(|(n, net)| format!(r#"{{"name":{n},"net":{net}}}"#));
    let class = (name, figure.clone(), figure.clone(), figure.clone()).prop_map(|(k, s, b, r)| {
        format!(r#"{{"kind":{k},"size":{s},"live_bytes":{b},"live_regions":{r}}}"#)
    });
    (
        prop::collection::vec(figure.clone(), 7),
        prop::collection::vec(thread, 0..20),
        prop::collection::vec(class, 0..20),
        (figure.clone(), figure),
        any::<f64>(),
    )
        .prop_map(|(m, threads, classes, (et, en), up)| {
            let up = if up.is_finite() { up } else { 0.0 };
            format!(
                r#"{{"jvmalloc_stats":1,"pid":{},"seq":{},"uptime_s":{up:?},"memory":{{"rss":{},"allocated":{},"resident":{},"overhead":{},"rss_not_malloc":{},"dirty":{},"retained":{}}},"threads":[{}],"exited":{{"threads":{et},"net":{en}}},"size_classes":[{}]}}"#,
                m[0],
                m[1],
                m[0],
                m[1],
                m[2],
                m[3],
                m[4],
                m[5],
                m[6],
                threads.join(","),
                classes.join(",")
            )
        })
}

proptest! {
    #[test]
    fn any_bytes_read_as_a_dump_file_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        if let Ok((Some(line), _)) = dumpfile::pick_json_line(&bytes[..], None) {
            let _ = dumpfile::parse(line.trim_end());
        }
    }

    #[test]
    fn any_string_parsed_as_a_dump_never_panics(text in any::<String>()) {
        let _ = dumpfile::parse(&text);
        let _ = dumpfile::parse(&format!("{{\"jvmalloc_stats\":1,{text}}}"));
    }

    #[test]
    fn json_like_text_never_panics(text in r#"[{}\[\]":,0-9a-z_ .eE+-]{0,200}"#) {
        let _ = dumpfile::parse(&text);
        let _ = dumpfile::parse(&format!("{{\"jvmalloc_stats\":1,\"threads\":{text}}}"));
    }

    #[test]
    fn diff_of_any_dumps_never_panics(a in dump_like(), b in dump_like(), top in 0usize..30) {
        let (a, b) = (dumpfile::parse(&a).unwrap(), dumpfile::parse(&b).unwrap());
        let out = diff::run(&a, &b, top.max(1));
        prop_assert!(out.starts_with("jvmalloc diff: pid "));
    }

    #[test]
    fn diff_prints_exact_integer_growth(old in any::<u64>(), new in any::<u64>()) {
        let dump = |rss: u64| {
            dumpfile::parse(&format!(r#"{{"jvmalloc_stats":1,"memory":{{"rss":{rss}}}}}"#)).unwrap()
        };
        let out = diff::run(&dump(old), &dump(new), 15);
        let want = format!("{old:>15} {new:>15} {:>+15}", i128::from(new) - i128::from(old));
        prop_assert!(out.contains(&want), "{}", out);
    }
}
