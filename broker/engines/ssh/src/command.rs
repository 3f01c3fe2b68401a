//! Exec commands as the target's shell will run them, and the decision on them.
//!
//! `ssh host CMD` sends CMD as one string; sshd hands it to the login user's shell with `-c`.
//! A rule that matched the raw string would be fooled by quoting (`'r''m'`, `\rm`), paths
//! (`/usr/bin/../bin/rm`) and shell syntax (`ls; rm -rf /`, `ls $(touch x)`). So the string is
//! read here with POSIX shell rules first:
//!
//! ```text
//!  "env X=1 sudo -u app /bin/ls -l /tmp; id"
//!        │ lex (quotes, escapes, $…, `…`, operators, redirections)
//!        ▼
//!  CommandLine { commands: [[env X=1 sudo -u app /bin/ls -l /tmp], [id]], syntax: [";"] }
//!        │ unwrap wrappers (sh -c, env, sudo, nice, timeout, xargs, find -exec, …)
//!        ▼
//!  [ls -l /tmp] [id]  ──rules──▶ Allow | Block | Hold | Transfer (scp, rsync, git)
//! ```
//!
//! Fail closed: what cannot be known before it runs (command or process substitution,
//! here-documents, a program name built from variables or globs, a shell reading its script
//! from stdin, a wrapper option this module does not know) is refused, whatever the rules say.
//! A command line with control syntax matches an allow rule only if every command in it is
//! allowed; redirections and variable assignments are shell syntax that plain allow rules do
//! not cover (`ls > /etc/x` writes a file; `LD_PRELOAD=… ls` runs other code).
//!
//! A deny-list cannot stop someone who is allowed an interpreter (`python3 -c …`,
//! `awk 'BEGIN{system(…)}'`): allow-lists are the recommended form.

use sluice_engine::glob::glob;
use std::fmt;

/// How deep `sh -c '… sh -c "…"'` nesting is followed before the line is refused.
const MAX_NESTING: usize = 4;

/// One word as the shell will see it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Word {
    /// The text with quotes and escapes removed.
    text: String,
    /// False when the shell expands it (`$VAR`, unquoted globs or braces): its value is not
    /// known here.
    literal: bool,
}

/// One simple command: its words after quote removal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Simple {
    /// Program and arguments.
    pub argv: Vec<String>,
    /// Which of them the shell expands (not known here).
    expands: Vec<bool>,
}

impl Simple {
    /// The program as the rules see it: a path normalized (`/usr/bin/../bin/rm` is `/bin/rm`).
    pub fn program(&self) -> String {
        self.argv.first().map(|p| normalize(p)).unwrap_or_default()
    }

    /// The program's name without its directory (`/bin/rm` is `rm`).
    pub fn name(&self) -> String {
        let program = self.program();
        program.rsplit('/').next().unwrap_or_default().to_owned()
    }

    /// `program args…` with the program as a name, and as written when it has a path: what
    /// rule patterns are matched against.
    fn forms(&self) -> Vec<String> {
        let args: Vec<&str> = self.argv.iter().skip(1).map(String::as_str).collect();
        let line = |program: &str| {
            if args.is_empty() {
                program.to_owned()
            } else {
                format!("{program} {}", args.join(" "))
            }
        };
        let mut forms = vec![line(&self.name())];
        if self.program().contains('/') {
            forms.push(line(&self.program()));
        }
        forms
    }

    fn from_words(words: Vec<Word>) -> Self {
        Self {
            expands: words.iter().map(|w| !w.literal).collect(),
            argv: words.into_iter().map(|w| w.text).collect(),
        }
    }
}

/// A command line read as the shell will run it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommandLine {
    /// Every simple command, in order, wrappers unwrapped (`sudo -u app ls` is `ls`).
    pub commands: Vec<Simple>,
    /// Shell syntax seen besides plain words: `;`, `&&`, `||`, `|`, `&`, newline, `(`,
    /// redirections, variable assignments.
    pub syntax: Vec<String>,
    /// Why the line cannot be known before it runs; it is refused.
    pub opaque: Option<String>,
}

impl CommandLine {
    /// Reads `line` with POSIX shell rules and unwraps wrapper commands.
    pub fn parse(line: &str) -> Self {
        let mut parsed = Self::default();
        parsed.read(line, 0);
        parsed
    }

    fn read(&mut self, line: &str, depth: usize) {
        if depth > MAX_NESTING {
            self.refuse("shell commands nest too deeply");
            return;
        }
        let lexed = match lex(line) {
            Ok(lexed) => lexed,
            Err(why) => {
                self.refuse(why);
                return;
            }
        };
        self.syntax.extend(lexed.syntax);
        for words in lexed.commands {
            self.unwrap(Simple::from_words(words), depth);
        }
    }

    fn refuse(&mut self, why: impl Into<String>) {
        if self.opaque.is_none() {
            self.opaque = Some(why.into());
        }
    }

    /// Records `command`, or what it runs when it is a wrapper.
    fn unwrap(&mut self, command: Simple, depth: usize) {
        if command.argv.is_empty() {
            return;
        }
        if command.expands.first() == Some(&true) {
            self.refuse(format!(
                "the program name `{}` is expanded by the shell, so what runs is not known",
                command.argv[0]
            ));
            return;
        }
        match unwrapped(&command) {
            Unwrapped::Plain => self.commands.push(command),
            Unwrapped::Runs(inner) => {
                // The wrapper runs too (sudo, env, nice): judged as itself and what it runs.
                self.commands.push(Simple {
                    argv: vec![command.argv[0].clone()],
                    expands: vec![false],
                });
                self.unwrap(inner, depth);
            }
            Unwrapped::Script(script) => {
                self.commands.push(Simple {
                    argv: vec![command.argv[0].clone()],
                    expands: vec![false],
                });
                self.read(&script, depth + 1);
            }
            Unwrapped::Also(inner) => {
                // find -exec: find runs, and so does the command it is given.
                self.commands.push(command);
                self.unwrap(inner, depth);
            }
            Unwrapped::Unknown(why) => self.refuse(why),
        }
    }
}

/// What a wrapper command runs.
enum Unwrapped {
    /// Not a wrapper.
    Plain,
    /// It runs this command.
    Runs(Simple),
    /// It runs this script with a shell.
    Script(String),
    /// It runs, and so does this command.
    Also(Simple),
    /// What it runs cannot be known.
    Unknown(String),
}

/// Shells that run a script given with `-c`.
const SHELLS: &[&str] = &[
    "sh", "bash", "dash", "zsh", "ksh", "ash", "mksh", "fish", "csh", "tcsh",
];

fn unwrapped(command: &Simple) -> Unwrapped {
    let name = command.name();
    let args = &command.argv[1..];
    let rest = |from: usize| {
        let argv = command.argv[1 + from..].to_vec();
        let expands = command.expands[1 + from..].to_vec();
        Simple { argv, expands }
    };
    let literal = |i: usize| !command.expands.get(1 + i).copied().unwrap_or(true);
    if SHELLS.contains(&name.as_str()) {
        return shell_script(&name, args, literal);
    }
    // Options taking a value, per wrapper, and whether the first operand is not the command
    // (timeout's duration).
    let (with_value, flags, operand_first): (&[&str], &[&str], bool) = match name.as_str() {
        "env" => (
            &["-u", "--unset", "-C", "--chdir"],
            &["-i", "--ignore-environment", "-0", "--null", "-"],
            false,
        ),
        "nice" => (&["-n", "--adjustment"], &[], false),
        "nohup" | "setsid" | "time" | "exec" | "builtin" => (
            &[],
            &["-w", "--wait", "-f", "--fork", "-p", "-c", "-l", "-a"],
            false,
        ),
        "command" => (&[], &["-p", "-v", "-V"], false),
        "stdbuf" => (
            &["-i", "-o", "-e", "--input", "--output", "--error"],
            &[],
            false,
        ),
        "ionice" => (
            &["-c", "-n", "--class", "--classdata"],
            &["-t", "--ignore"],
            false,
        ),
        "timeout" => (
            &["-s", "--signal", "-k", "--kill-after"],
            &["--preserve-status", "--foreground", "-v", "--verbose"],
            true,
        ),
        "sudo" => (
            &[
                "-u",
                "--user",
                "-g",
                "--group",
                "-C",
                "--close-from",
                "-D",
                "--chdir",
                "-h",
                "--host",
                "-p",
                "--prompt",
                "-r",
                "--role",
                "-t",
                "--type",
                "-U",
                "--other-user",
                "-T",
                "--command-timeout",
            ],
            &[
                "-E",
                "--preserve-env",
                "-H",
                "--set-home",
                "-n",
                "--non-interactive",
                "-P",
                "--preserve-groups",
                "-S",
                "--stdin",
                "-b",
                "--background",
                "-k",
                "--reset-timestamp",
                "-A",
                "--askpass",
                "-B",
                "--bell",
            ],
            false,
        ),
        "doas" => (&["-u", "-C"], &["-n"], false),
        "xargs" => (
            &[
                "-I",
                "-i",
                "-n",
                "--max-args",
                "-P",
                "--max-procs",
                "-d",
                "--delimiter",
                "-L",
                "-l",
                "--max-lines",
                "-s",
                "--max-chars",
                "-E",
                "-e",
                "--eof",
                "-a",
                "--arg-file",
                "--process-slot-var",
            ],
            &[
                "-0",
                "--null",
                "-r",
                "--no-run-if-empty",
                "-t",
                "--verbose",
                "-x",
                "--exit",
                "-p",
                "--interactive",
                "--open-tty",
                "-o",
            ],
            false,
        ),
        "find" => return find_exec(command),
        _ => return Unwrapped::Plain,
    };
    let mut i = 0;
    while i < args.len() {
        let arg = args[i].as_str();
        if arg == "--" {
            i += 1;
            break;
        }
        if !literal(i) {
            return Unwrapped::Unknown(format!("`{name}` is given an argument the shell expands"));
        }
        if name == "env" && is_assignment(arg) {
            i += 1;
            continue;
        }
        if !arg.starts_with('-') || arg == "-" && name != "env" {
            break;
        }
        let (option, inline) = match arg.split_once('=') {
            Some((option, _)) if option.starts_with("--") => (option, true),
            _ => (arg, false),
        };
        if with_value.contains(&option) {
            i += if inline { 1 } else { 2 };
            continue;
        }
        if flags.contains(&option) {
            i += 1;
            continue;
        }
        // Short options with the value attached (`-n10`, `-uapp`, `-oL`).
        if with_value
            .iter()
            .any(|o| o.len() == 2 && arg.len() > 2 && arg.starts_with(o))
        {
            i += 1;
            continue;
        }
        return Unwrapped::Unknown(format!(
            "`{name}` is given the option `{arg}`, which sluice does not know, so what it runs is \
             not known"
        ));
    }
    if operand_first {
        i += 1;
    }
    if i >= args.len() {
        return match name.as_str() {
            // `sudo -s`/`sudo -i` without a command, `exec` alone: a shell, or nothing.
            "sudo" | "doas" => {
                Unwrapped::Unknown(format!("`{name}` without a command runs a shell"))
            }
            _ => Unwrapped::Plain,
        };
    }
    Unwrapped::Runs(rest(i))
}

/// `sh -c SCRIPT`: the script; a shell without `-c` reads its script from stdin or a file.
fn shell_script(name: &str, args: &[String], literal: impl Fn(usize) -> bool) -> Unwrapped {
    for (i, arg) in args.iter().enumerate() {
        if !arg.starts_with('-') || arg == "-" || arg == "--" {
            break;
        }
        // `-c`, or a cluster ending in it (`-ec`, `-lc`).
        if arg.len() >= 2 && !arg.starts_with("--") && arg.ends_with('c') {
            return match args.get(i + 1) {
                Some(script) if literal(i + 1) => Unwrapped::Script(script.clone()),
                Some(_) => Unwrapped::Unknown(format!(
                    "`{name} -c` is given a script the shell expands, so what it runs is not known"
                )),
                None => Unwrapped::Unknown(format!("`{name} -c` without a script")),
            };
        }
    }
    Unwrapped::Unknown(format!(
        "`{name}` without `-c` runs a script from its input or a file, which sluice cannot see"
    ))
}

/// `find … -exec CMD ;` (and `-execdir`, `-ok`, `-okdir`): the command it runs.
fn find_exec(command: &Simple) -> Unwrapped {
    let args = &command.argv[1..];
    let Some(at) = args
        .iter()
        .position(|a| matches!(a.as_str(), "-exec" | "-execdir" | "-ok" | "-okdir"))
    else {
        if args
            .iter()
            .any(|a| a == "-delete" || a.starts_with("-fprint"))
        {
            // Writes, but runs nothing else: judged as find.
            return Unwrapped::Plain;
        }
        return Unwrapped::Plain;
    };
    let end = args[at + 1..]
        .iter()
        .position(|a| a == ";" || a == "+")
        .map_or(args.len(), |p| at + 1 + p);
    let inner: Vec<String> = args[at + 1..end].to_vec();
    if inner.is_empty() {
        return Unwrapped::Unknown("`find -exec` without a command".into());
    }
    let expands = command.expands[1 + at + 1..1 + end].to_vec();
    Unwrapped::Also(Simple {
        argv: inner,
        expands,
    })
}

fn is_assignment(word: &str) -> bool {
    let Some((name, _)) = word.split_once('=') else {
        return false;
    };
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `/usr/bin/../bin/rm` is `/bin/rm`; `./x` stays relative.
fn normalize(path: &str) -> String {
    if !path.contains('/') {
        return path.to_owned();
    }
    let absolute = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|p| *p != "..") {
                    parts.pop();
                } else if !absolute {
                    parts.push("..");
                }
            }
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    if absolute {
        format!("/{joined}")
    } else if joined.is_empty() {
        ".".into()
    } else {
        joined
    }
}

/// The words of each simple command of a line, and the syntax around them.
struct Lexed {
    commands: Vec<Vec<Word>>,
    syntax: Vec<String>,
}

/// Splits a line with POSIX shell rules. `Err` says why it cannot be known before it runs.
fn lex(line: &str) -> Result<Lexed, String> {
    let chars: Vec<char> = line.chars().collect();
    let mut commands: Vec<Vec<Word>> = vec![Vec::new()];
    let mut syntax: Vec<String> = Vec::new();
    let mut word: Option<Word> = None;
    // The next word is a redirection's target, not an argument.
    let mut target_next = false;
    let mut i = 0;
    let finish = |word: &mut Option<Word>,
                  commands: &mut Vec<Vec<Word>>,
                  syntax: &mut Vec<String>,
                  target_next: &mut bool| {
        if let Some(w) = word.take() {
            let current = commands.last_mut().expect("one command at least");
            if *target_next {
                *target_next = false;
            } else if current.is_empty() && w.literal && is_assignment(&w.text) {
                syntax.push(format!(
                    "assignment {}",
                    w.text.split('=').next().unwrap_or("")
                ));
            } else {
                current.push(w);
            }
        }
    };
    while i < chars.len() {
        let c = chars[i];
        match c {
            ' ' | '\t' => {
                finish(&mut word, &mut commands, &mut syntax, &mut target_next);
                i += 1;
            }
            '\n' | ';' | '&' | '|' | '(' | ')' => {
                finish(&mut word, &mut commands, &mut syntax, &mut target_next);
                let mut op = c.to_string();
                if matches!(c, '&' | '|' | ';') && chars.get(i + 1) == Some(&c) {
                    op.push(c);
                    i += 1;
                }
                if c == '|' && chars.get(i + 1) == Some(&'&') {
                    op.push('&');
                    i += 1;
                }
                if c == '&' && chars.get(i + 1) == Some(&'>') {
                    // `&>` redirection.
                    syntax.push("redirection &>".into());
                    target_next = true;
                    i += 2;
                    continue;
                }
                syntax.push(if c == '\n' { "newline".into() } else { op });
                if !commands.last().is_some_and(Vec::is_empty) {
                    commands.push(Vec::new());
                }
                i += 1;
            }
            '<' | '>' => {
                // A preceding all-digit word is the file descriptor (`2>`).
                if word.as_ref().is_some_and(|w| {
                    w.literal && !w.text.is_empty() && w.text.chars().all(|d| d.is_ascii_digit())
                }) {
                    word = None;
                }
                finish(&mut word, &mut commands, &mut syntax, &mut target_next);
                let next = chars.get(i + 1).copied();
                if next == Some('(') {
                    return Err("process substitution (`<(…)`, `>(…)`) runs commands".into());
                }
                if c == '<' && next == Some('<') {
                    return Err("here-documents are not judged".into());
                }
                let mut op = c.to_string();
                while let Some(&n) = chars.get(i + op.chars().count()) {
                    if matches!(n, '>' | '<' | '&' | '|') && op.len() < 3 {
                        op.push(n);
                    } else {
                        break;
                    }
                }
                i += op.chars().count();
                syntax.push(format!("redirection {op}"));
                if op.ends_with('&')
                    && chars
                        .get(i)
                        .is_some_and(|c| c.is_ascii_digit() || *c == '-')
                {
                    // `2>&1`, `>&-`: a descriptor, not a file.
                    while chars
                        .get(i)
                        .is_some_and(|c| c.is_ascii_digit() || *c == '-')
                    {
                        i += 1;
                    }
                } else {
                    target_next = true;
                }
            }
            '#' if word.is_none() => {
                // A comment to the end of the line.
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '`' => return Err("command substitution (backticks) runs commands".into()),
            _ => {
                let w = word.get_or_insert_with(|| Word {
                    text: String::new(),
                    literal: true,
                });
                i = word_part(&chars, i, w)?;
                // A reserved word or a group brace alone is syntax, not a program.
                if matches!(w.text.as_str(), "{" | "}" | "!")
                    && chars.get(i).is_none_or(|c| c.is_whitespace() || *c == ';')
                {
                    syntax.push(w.text.clone());
                    word = None;
                }
            }
        }
    }
    finish(&mut word, &mut commands, &mut syntax, &mut target_next);
    if target_next {
        return Err("a redirection without a target".into());
    }
    commands.retain(|c| !c.is_empty());
    for words in &commands {
        if let Some(first) = words.first()
            && matches!(
                first.text.as_str(),
                "if" | "then"
                    | "else"
                    | "elif"
                    | "fi"
                    | "for"
                    | "while"
                    | "until"
                    | "do"
                    | "done"
                    | "case"
                    | "esac"
                    | "function"
                    | "select"
                    | "coproc"
                    | "[["
                    | "eval"
                    | "source"
                    | "."
                    | "trap"
                    | "alias"
            )
        {
            return Err(format!(
                "`{}` is shell control or evaluation syntax, which is not judged",
                first.text
            ));
        }
    }
    Ok(Lexed { commands, syntax })
}

/// Reads one piece of a word starting at `i` (a quoted string, an escape, an expansion or a
/// plain character) into `w`; returns where the next piece starts.
fn word_part(chars: &[char], i: usize, w: &mut Word) -> Result<usize, String> {
    let c = chars[i];
    match c {
        '\'' => {
            let end = chars[i + 1..]
                .iter()
                .position(|&c| c == '\'')
                .ok_or("an unterminated single quote")?;
            w.text.extend(&chars[i + 1..i + 1 + end]);
            Ok(i + end + 2)
        }
        '"' => {
            let mut j = i + 1;
            loop {
                match chars.get(j) {
                    None => return Err("an unterminated double quote".into()),
                    Some('"') => return Ok(j + 1),
                    Some('\\') => {
                        match chars.get(j + 1) {
                            Some(&n @ ('$' | '`' | '"' | '\\')) => w.text.push(n),
                            Some('\n') => {}
                            Some(&n) => {
                                w.text.push('\\');
                                w.text.push(n);
                            }
                            None => return Err("an unterminated double quote".into()),
                        }
                        j += 2;
                    }
                    Some('`') => {
                        return Err("command substitution (backticks) runs commands".into());
                    }
                    Some('$') => j = dollar(chars, j, w)?,
                    Some(&n) => {
                        w.text.push(n);
                        j += 1;
                    }
                }
            }
        }
        '\\' => {
            match chars.get(i + 1) {
                Some('\n') => {}
                Some(&n) => w.text.push(n),
                None => {}
            }
            Ok(i + 2)
        }
        '$' => dollar(chars, i, w),
        '*' | '?' | '[' | '~' => {
            w.literal = false;
            w.text.push(c);
            Ok(i + 1)
        }
        '{' if chars[i + 1..]
            .iter()
            .take_while(|c| !c.is_whitespace())
            .any(|c| *c == ',' || *c == '.') =>
        {
            // Brace expansion (`/bin/{rm,ls}`, `{1..3}`).
            w.literal = false;
            w.text.push(c);
            Ok(i + 1)
        }
        _ => {
            w.text.push(c);
            Ok(i + 1)
        }
    }
}

/// A `$` at `i`: substitutions run commands; variables make the word unknown.
fn dollar(chars: &[char], i: usize, w: &mut Word) -> Result<usize, String> {
    match chars.get(i + 1) {
        Some('(') => Err("command substitution (`$(…)`) runs commands".into()),
        Some('\'') => Err("ANSI-C quoting (`$'…'`) is not judged".into()),
        Some(c)
            if c.is_ascii_alphanumeric()
                || matches!(c, '_' | '{' | '@' | '*' | '#' | '?' | '-' | '$' | '!') =>
        {
            w.literal = false;
            w.text.push('$');
            Ok(i + 1)
        }
        _ => {
            // A lone `$` is itself.
            w.text.push('$');
            Ok(i + 1)
        }
    }
}

/// A file transfer recognised in an exec command: judged by the file rules, not as a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    /// Which protocol.
    pub kind: TransferKind,
    /// True when files go to the host.
    pub upload: bool,
    /// `scp -r`: a whole directory.
    pub recursive: bool,
    /// The paths named (a repository, a target directory).
    pub paths: Vec<String>,
}

/// The file-transfer programs recognised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferKind {
    /// Legacy `scp -O` (`scp -t`/`scp -f` on the host).
    Scp,
    /// `rsync --server`.
    Rsync,
    /// `git-upload-pack`/`git-receive-pack`/`git-upload-archive`.
    Git,
}

impl fmt::Display for TransferKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TransferKind::Scp => "scp",
            TransferKind::Rsync => "rsync",
            TransferKind::Git => "git",
        })
    }
}

/// The transfer a one-command line starts, if it is one.
fn transfer(line: &CommandLine) -> Option<Transfer> {
    let [command] = line.commands.as_slice() else {
        return None;
    };
    if !line.syntax.is_empty() {
        return None;
    }
    let args = &command.argv[1..];
    let operands = |skip_flags: bool| -> Vec<String> {
        args.iter()
            .filter(|a| !(skip_flags && a.starts_with('-')))
            .cloned()
            .collect()
    };
    match command.name().as_str() {
        "scp" if args.iter().any(|a| a == "-t" || a == "-f") => Some(Transfer {
            kind: TransferKind::Scp,
            upload: args.iter().any(|a| a == "-t"),
            recursive: args
                .iter()
                .any(|a| a.starts_with('-') && !a.starts_with("--") && a.contains('r')),
            paths: operands(true),
        }),
        "rsync" if args.iter().any(|a| a == "--server") => Some(Transfer {
            kind: TransferKind::Rsync,
            upload: !args.iter().any(|a| a == "--sender"),
            recursive: true,
            paths: args
                .iter()
                .skip_while(|a| *a != ".")
                .skip(1)
                .cloned()
                .collect(),
        }),
        name @ ("git-upload-pack" | "git-receive-pack" | "git-upload-archive") => Some(Transfer {
            kind: TransferKind::Git,
            upload: name == "git-receive-pack",
            recursive: true,
            paths: operands(true),
        }),
        _ => None,
    }
}

/// A named rule: command patterns, globs over `program args…` (`*` any run of characters,
/// `?` one). A pattern matches the program by name (`ls -l *`) or by its normalized path
/// (`/opt/app/bin/migrate *`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecRule {
    /// Named in refusals and approvals.
    pub name: String,
    /// Patterns; one match is enough.
    pub commands: Vec<String>,
}

impl ExecRule {
    fn matches(&self, command: &Simple) -> bool {
        let forms = command.forms();
        self.commands
            .iter()
            .any(|pattern| forms.iter().any(|form| glob(pattern, form)))
    }
}

/// A role's exec rules. Without `allow` rules every command not blocked is allowed (a
/// deny-list); with them, every command of a line must match one (an allow-list, the
/// recommended form).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecRules {
    /// Commands that may run.
    pub allow: Vec<ExecRule>,
    /// Commands that never run.
    pub block: Vec<ExecRule>,
    /// Commands that run once an approver agrees.
    pub approve: Vec<ExecRule>,
}

/// The decision on an exec command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Judgement {
    /// Run it.
    Allow,
    /// Refuse it: the client is told `reason` on stderr; nothing reaches the host.
    Block {
        /// The rule that refused it.
        rule: String,
        /// Why, for the client.
        reason: String,
    },
    /// Hold it for approval.
    Hold {
        /// The rule that holds it.
        rule: String,
        /// Why, for approvers and the client.
        reason: String,
    },
    /// A file transfer: judged by the role's file rules.
    Transfer(Transfer),
}

impl ExecRules {
    /// Decides `line` (the string `ssh host LINE` sent).
    pub fn judge(&self, line: &str) -> Judgement {
        let parsed = CommandLine::parse(line);
        if let Some(why) = &parsed.opaque {
            return Judgement::Block {
                rule: "exec:unknowable".into(),
                reason: format!("sluice cannot tell what this command runs: {why}"),
            };
        }
        if let Some(transfer) = transfer(&parsed) {
            return Judgement::Transfer(transfer);
        }
        for command in &parsed.commands {
            if let Some(rule) = self.block.iter().find(|r| r.matches(command)) {
                return Judgement::Block {
                    rule: rule.name.clone(),
                    reason: format!("`{}` is blocked by rule '{}'", command.name(), rule.name),
                };
            }
        }
        let held = parsed
            .commands
            .iter()
            .find_map(|c| self.approve.iter().find(|r| r.matches(c)).map(|r| (c, r)));
        if !self.allow.is_empty() || held.is_some() {
            if let Some(syntax) = parsed
                .syntax
                .iter()
                .find(|s| s.starts_with("redirection") || s.starts_with("assignment"))
            {
                return Judgement::Block {
                    rule: "exec:shell-syntax".into(),
                    reason: format!(
                        "the command uses shell syntax ({syntax}) that the role's rules do not \
                         cover; run the command alone"
                    ),
                };
            }
            let allowed = |c: &Simple| self.allow.iter().chain(&self.approve).any(|r| r.matches(c));
            if !self.allow.is_empty()
                && let Some(outside) = parsed.commands.iter().find(|c| !allowed(c))
            {
                return Judgement::Block {
                    rule: "exec:not-allowed".into(),
                    reason: format!(
                        "`{}` is not among the commands this role may run{}",
                        outside.name(),
                        if parsed.commands.len() > 1 {
                            " (every command of a line must be allowed)"
                        } else {
                            ""
                        }
                    ),
                };
            }
        }
        if let Some((command, rule)) = held {
            return Judgement::Hold {
                rule: rule.name.clone(),
                reason: format!(
                    "`{}` needs approval under rule '{}'",
                    command.name(),
                    rule.name
                ),
            };
        }
        Judgement::Allow
    }
}

#[cfg(test)]
mod tests;
