//! Table-driven: how lines are read, and the decisions on the smuggling attempts of issue 12.

use super::*;

fn rule(name: &str, commands: &[&str]) -> ExecRule {
    ExecRule {
        name: name.into(),
        commands: commands.iter().map(|c| (*c).to_owned()).collect(),
    }
}

fn names(line: &str) -> Vec<String> {
    CommandLine::parse(line)
        .commands
        .iter()
        .map(Simple::name)
        .collect()
}

fn short(judgement: &Judgement) -> String {
    match judgement {
        Judgement::Allow => "allow".into(),
        Judgement::Block { rule, .. } => format!("block:{rule}"),
        Judgement::Hold { rule, .. } => format!("hold:{rule}"),
        Judgement::Transfer(t) => format!(
            "transfer:{}:{}",
            t.kind,
            if t.upload { "up" } else { "down" }
        ),
    }
}

#[test]
fn words_are_read_as_the_shell_reads_them() {
    let cases: &[(&str, &[&str])] = &[
        ("ls -l /tmp", &["ls"]),
        ("'r''m' -rf x", &["rm"]),
        ("\\rm x", &["rm"]),
        ("\"rm\" x", &["rm"]),
        ("r\\m x", &["rm"]),
        ("/usr/bin/../bin/rm x", &["rm"]),
        ("ls; id", &["ls", "id"]),
        (
            "ls && id || who | wc -l & date",
            &["ls", "id", "who", "wc", "date"],
        ),
        ("ls\nid", &["ls", "id"]),
        ("(id)", &["id"]),
        ("{ id; }", &["id"]),
        ("ls 2>&1 | grep x", &["ls", "grep"]),
        ("ls # ; rm -rf /", &["ls"]),
        ("sudo -u app -- ls /srv", &["sudo", "ls"]),
        (
            "env -i PATH=/bin X=1 nice -n 5 timeout -s KILL 10 ls",
            &["env", "nice", "timeout", "ls"],
        ),
        ("sh -c 'ls; id'", &["sh", "ls", "id"]),
        ("bash -lc \"sh -c 'whoami'\"", &["bash", "sh", "whoami"]),
        ("find /tmp -name x -exec rm {} \\;", &["find", "rm"]),
        ("xargs -0 -n 1 rm", &["xargs", "rm"]),
        ("X=1 ls", &["ls"]),
    ];
    for (line, expected) in cases {
        assert_eq!(names(line), *expected, "{line:?}");
    }
    let parsed = CommandLine::parse("ls > /tmp/out 2>&1");
    assert_eq!(parsed.commands[0].argv, ["ls"]);
    assert!(
        parsed.syntax.iter().any(|s| s == "redirection >"),
        "{parsed:?}"
    );
    assert_eq!(
        CommandLine::parse("/usr/./bin//../bin/ls").commands[0].program(),
        "/usr/bin/ls"
    );
}

#[test]
fn what_cannot_be_known_before_it_runs_is_opaque() {
    for line in [
        "ls $(touch /tmp/marker)",
        "ls `touch /tmp/marker`",
        "ls \"$(id)\"",
        "cat <(id)",
        "cat <<EOF\nx\nEOF",
        "$CMD x",
        "${CMD} x",
        "/bin/r? x",
        "/bin/{rm,ls} x",
        "X=rm; $X x",
        "bash",
        "sh script.sh",
        "sudo -s",
        "eval rm x",
        ". ./x",
        "source x",
        "if true; then rm x; fi",
        "for f in a; do rm $f; done",
        "echo 'unterminated",
        "echo $'\\x72m'",
        "env -S 'rm x'",
        "sudo --weird-option rm x",
        "sh -c \"$SCRIPT\"",
        "ls >",
    ] {
        let parsed = CommandLine::parse(line);
        assert!(parsed.opaque.is_some(), "{line:?} was read as {parsed:?}");
    }
}

#[test]
fn smuggling_past_an_allow_rule_is_refused() {
    let rules = ExecRules {
        allow: vec![rule("listing", &["ls", "ls *"])],
        ..ExecRules::default()
    };
    let cases = [
        ("ls /tmp", "allow"),
        ("ls -la /tmp", "allow"),
        ("/bin/ls /tmp", "allow"),
        ("ls /tmp; touch /tmp/marker", "block:exec:not-allowed"),
        ("ls $(touch /tmp/marker)", "block:exec:unknowable"),
        ("ls `touch /tmp/marker`", "block:exec:unknowable"),
        ("ls /tmp && touch /tmp/marker", "block:exec:not-allowed"),
        ("ls /tmp || touch /tmp/marker", "block:exec:not-allowed"),
        ("ls /tmp | touch /tmp/marker", "block:exec:not-allowed"),
        ("ls /tmp & touch /tmp/marker", "block:exec:not-allowed"),
        ("ls /tmp\ntouch /tmp/marker", "block:exec:not-allowed"),
        ("sh -c 'touch /tmp/marker'", "block:exec:not-allowed"),
        ("ls > /tmp/marker", "block:exec:shell-syntax"),
        ("LD_PRELOAD=/tmp/x.so ls", "block:exec:shell-syntax"),
        (
            "find / -exec touch /tmp/marker \\;",
            "block:exec:not-allowed",
        ),
        ("touch /tmp/marker # ls", "block:exec:not-allowed"),
        ("sudo ls", "block:exec:not-allowed"),
    ];
    for (line, expected) in cases {
        assert_eq!(short(&rules.judge(line)), expected, "{line:?}");
    }
}

#[test]
fn a_blocked_program_is_blocked_however_it_is_written() {
    let rules = ExecRules {
        block: vec![rule("no-rm", &["rm", "rm *"])],
        approve: vec![rule("restarts", &["systemctl restart *"])],
        ..ExecRules::default()
    };
    for line in [
        "rm -rf /tmp/x",
        "'r''m' -rf x",
        "\\rm x",
        "\"rm\" x",
        "r\\m x",
        "/bin/rm x",
        "/usr/bin/../bin/rm x",
        "sudo rm x",
        "sudo -u root -- rm x",
        "env X=1 rm x",
        "nice -n 5 rm x",
        "timeout 5 rm x",
        "nohup rm x &",
        "exec rm x",
        "command rm x",
        "sh -c 'rm x'",
        "bash -lc \"rm x\"",
        "sh -c \"sh -c 'rm x'\"",
        "find . -exec rm {} \\;",
        "xargs rm",
        "ls; rm x",
        "echo hi && rm x",
    ] {
        assert_eq!(short(&rules.judge(line)), "block:no-rm", "{line:?}");
    }
    assert_eq!(short(&rules.judge("echo hi")), "allow");
    assert_eq!(short(&rules.judge("$X x")), "block:exec:unknowable");
    assert_eq!(
        short(&rules.judge("systemctl restart app")),
        "hold:restarts"
    );
    assert_eq!(
        short(&rules.judge("systemctl restart app; rm x")),
        "block:no-rm"
    );
    assert_eq!(
        short(&rules.judge("systemctl restart app > /tmp/log")),
        "block:exec:shell-syntax"
    );
}

#[test]
fn an_exec_only_role_runs_exactly_its_command() {
    let rules = ExecRules {
        allow: vec![rule("migrate", &["/opt/app/bin/migrate *"])],
        ..ExecRules::default()
    };
    assert_eq!(short(&rules.judge("/opt/app/bin/migrate up")), "allow");
    assert_eq!(
        short(&rules.judge("/opt/app/bin/../bin/migrate up")),
        "allow"
    );
    // The same name elsewhere is another program.
    assert_eq!(
        short(&rules.judge("/tmp/migrate up")),
        "block:exec:not-allowed"
    );
    assert_eq!(short(&rules.judge("migrate up")), "block:exec:not-allowed");
}

#[test]
fn file_transfers_are_recognised() {
    let rules = ExecRules::default();
    let cases = [
        ("scp -t /tmp/dst", "transfer:scp:up"),
        ("scp -r -f /etc/hosts", "transfer:scp:down"),
        (
            "rsync --server -vlogDtpre.iLsfxC . /srv/dst",
            "transfer:rsync:up",
        ),
        (
            "rsync --server --sender -vlogDtpre.iLsfxC . /srv/src",
            "transfer:rsync:down",
        ),
        ("git-upload-pack '/srv/repo.git'", "transfer:git:down"),
        ("git-receive-pack 'repo.git'", "transfer:git:up"),
        // With shell syntax it is a command line, judged as such.
        ("scp -t /tmp/dst; id", "allow"),
    ];
    for (line, expected) in cases {
        assert_eq!(short(&rules.judge(line)), expected, "{line:?}");
    }
    let Judgement::Transfer(t) = rules.judge("git-upload-pack '/srv/repo.git'") else {
        panic!("not a transfer");
    };
    assert_eq!(t.paths, ["/srv/repo.git"]);
}

#[test]
fn globs_match_linearly() {
    assert!(glob("ls *", "ls -la /tmp"));
    assert!(glob("ls", "ls"));
    assert!(!glob("ls", "ls -l"));
    assert!(glob("git ?ull *", "git pull origin"));
    assert!(!glob("rm *", "rmdir x"));
    // A hostile pattern against a long text ends (one backtrack point) and answers right.
    let text = "a".repeat(2_000);
    assert!(!glob(&("*a".repeat(500) + "b"), &text));
    assert!(glob(&"*a".repeat(500), &text));
}

#[test]
fn any_line_is_read_without_panicking() {
    const ALPHABET: &[char] = &[
        'a', 'r', 'm', ' ', '\t', '\n', ';', '&', '|', '(', ')', '{', '}', '<', '>', '\'', '"',
        '\\', '$', '`', '#', '*', '?', '[', '~', '=', '-', '/', '.', ',', '1', '2', 'c',
    ];
    let rules = ExecRules {
        allow: vec![rule("a", &["a *"])],
        block: vec![rule("rm", &["rm *"])],
        approve: vec![rule("c", &["c*"])],
    };
    let mut seed: u64 = 0x5eed;
    let mut next = || {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        (seed >> 33) as usize
    };
    let mut refused = 0;
    for _ in 0..20_000 {
        let len = next() % 24;
        let line: String = (0..len)
            .map(|_| ALPHABET[next() % ALPHABET.len()])
            .collect();
        if !matches!(rules.judge(&line), Judgement::Allow) {
            refused += 1;
        }
        // Wrapper words too.
        let wrapped = format!("sudo -u x sh -c '{line}'");
        let _ = rules.judge(&wrapped);
    }
    assert!(refused > 0);
}
