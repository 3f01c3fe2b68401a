# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_sluice_global_optspecs
    string join \n broker= ca= h/help V/version
end

function __fish_sluice_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_sluice_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_sluice_using_subcommand
    set -l cmd (__fish_sluice_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c sluice -n "__fish_sluice_needs_command" -l broker -d 'Broker URL (https://HOST:PORT); remembered by `login`' -r
complete -c sluice -n "__fish_sluice_needs_command" -l ca -d 'PEM file with the CA that signed the broker\'s certificate; remembered by `login`' -r -F
complete -c sluice -n "__fish_sluice_needs_command" -s h -l help -d 'Print help'
complete -c sluice -n "__fish_sluice_needs_command" -s V -l version -d 'Print version'
complete -c sluice -n "__fish_sluice_needs_command" -f -a "login" -d 'Log in to the broker: approve a code at your identity provider (OIDC device flow), or pipe in a token with --token-stdin'
complete -c sluice -n "__fish_sluice_needs_command" -f -a "logout" -d 'Forget the stored session token'
complete -c sluice -n "__fish_sluice_needs_command" -f -a "whoami" -d 'Show who the broker thinks you are'
complete -c sluice -n "__fish_sluice_needs_command" -f -a "resources" -d 'List the resources you may ask for, with the roles policy lets you request on each'
complete -c sluice -n "__fish_sluice_needs_command" -f -a "connect" -d 'Open a tunnel to a resource on 127.0.0.1 and keep it open until Ctrl-C (or until the `--exec` command exits). Uses your active grant for the resource and role, or asks for one and waits for its approval'
complete -c sluice -n "__fish_sluice_needs_command" -f -a "run" -d 'Run one command with a fresh grant: ask for it, wait for approval, connect, run CMD with the connection in its environment, then revoke the grant when CMD exits (one CI step)'
complete -c sluice -n "__fish_sluice_needs_command" -f -a "ssh" -d 'Run the system ssh (or scp\'s/rsync\'s ssh) through the broker under a grant: the broker logs in to the host with its own key and decides each command'
complete -c sluice -n "__fish_sluice_needs_command" -f -a "kube" -d 'Run kubectl through the broker under a grant: a temporary kubeconfig points it at a local tunnel with a one-time token; the broker decides every API request and calls the cluster with its own credential'
complete -c sluice -n "__fish_sluice_needs_command" -f -a "mcp" -d 'Serve Sluice to an AI agent as MCP tools (stdio by default, the transport MCP clients launch): list resources, ask for access, run queries, commands and requests through the broker\'s guardrails, read masked results, end the grant. The agent never receives a credential or a tunnel secret'
complete -c sluice -n "__fish_sluice_needs_command" -f -a "proxy" -d 'Helpers other programs run (ssh\'s ProxyCommand)'
complete -c sluice -n "__fish_sluice_needs_command" -f -a "config" -d 'Write configuration for other tools: `sluice config ssh` lets plain ssh, scp, sftp, rsync and git reach ssh resources as RESOURCE.sluice'
complete -c sluice -n "__fish_sluice_needs_command" -f -a "kube-credential" -d 'A kubectl exec credential plugin (written into kubeconfigs by `sluice config kube`): prints an ExecCredential for the broker\'s Kubernetes endpoint under your grant on RES, asking for one when you hold none'
complete -c sluice -n "__fish_sluice_needs_command" -f -a "grant" -d 'Ask for, wait for, list and revoke just-in-time grants (a role on a resource for a time)'
complete -c sluice -n "__fish_sluice_needs_command" -f -a "approvals" -d 'Show the pending requests and held statements you may approve or deny; with --watch, wait for new ones and prompt for each as it arrives'
complete -c sluice -n "__fish_sluice_needs_command" -f -a "approve" -d 'Approve a pending request (one approver\'s yes; some roles need more than one), or a statement held in a live session (an `s_…` id), which then runs at once'
complete -c sluice -n "__fish_sluice_needs_command" -f -a "deny" -d 'Deny a pending request, or a statement held in a live session (an `s_…` id); the reason is shown to the requester'
complete -c sluice -n "__fish_sluice_needs_command" -f -a "sessions" -d 'List, show and replay recorded sessions: yours, or everyone\'s if you are an auditor (policy.auditors)'
complete -c sluice -n "__fish_sluice_needs_command" -f -a "audit" -d 'Check the broker\'s tamper-evident audit trail, or export it for a SIEM (auditors only: policy.auditors)'
complete -c sluice -n "__fish_sluice_needs_command" -f -a "completions" -d 'Print shell completions'
complete -c sluice -n "__fish_sluice_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c sluice -n "__fish_sluice_using_subcommand login" -l issuer -d 'The identity provider to log in with, by the broker\'s name for it; needed only when the broker trusts more than one' -r
complete -c sluice -n "__fish_sluice_using_subcommand login" -l workload -d 'Log in as a CI job or agent with the platform\'s identity token: github, gitlab, kubernetes, file:PATH or env:VAR. Prints the session token on stdout unless --store' -r
complete -c sluice -n "__fish_sluice_using_subcommand login" -l audience -d 'The audience to request the workload token for (default: the broker\'s rule for the platform)' -r
complete -c sluice -n "__fish_sluice_using_subcommand login" -l broker -d 'Broker URL (https://HOST:PORT); remembered by `login`' -r
complete -c sluice -n "__fish_sluice_using_subcommand login" -l ca -d 'PEM file with the CA that signed the broker\'s certificate; remembered by `login`' -r -F
complete -c sluice -n "__fish_sluice_using_subcommand login" -l token-stdin -d 'Read a session token (from `sluiced token issue`) from standard input'
complete -c sluice -n "__fish_sluice_using_subcommand login" -l store -d 'With --workload: store the session token like an interactive login instead of printing it'
complete -c sluice -n "__fish_sluice_using_subcommand login" -s h -l help -d 'Print help'
complete -c sluice -n "__fish_sluice_using_subcommand logout" -l broker -d 'Broker URL (https://HOST:PORT); remembered by `login`' -r
complete -c sluice -n "__fish_sluice_using_subcommand logout" -l ca -d 'PEM file with the CA that signed the broker\'s certificate; remembered by `login`' -r -F
complete -c sluice -n "__fish_sluice_using_subcommand logout" -s h -l help -d 'Print help'
complete -c sluice -n "__fish_sluice_using_subcommand whoami" -l output -d 'Output format' -r -f -a "text\t'For people'
json\t'One JSON document (JSON Lines for streams)'"
complete -c sluice -n "__fish_sluice_using_subcommand whoami" -l broker -d 'Broker URL (https://HOST:PORT); remembered by `login`' -r
complete -c sluice -n "__fish_sluice_using_subcommand whoami" -l ca -d 'PEM file with the CA that signed the broker\'s certificate; remembered by `login`' -r -F
complete -c sluice -n "__fish_sluice_using_subcommand whoami" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c sluice -n "__fish_sluice_using_subcommand resources" -l output -d 'Output format' -r -f -a "text\t'For people'
json\t'One JSON document (JSON Lines for streams)'"
complete -c sluice -n "__fish_sluice_using_subcommand resources" -l broker -d 'Broker URL (https://HOST:PORT); remembered by `login`' -r
complete -c sluice -n "__fish_sluice_using_subcommand resources" -l ca -d 'PEM file with the CA that signed the broker\'s certificate; remembered by `login`' -r -F
complete -c sluice -n "__fish_sluice_using_subcommand resources" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c sluice -n "__fish_sluice_using_subcommand connect" -s r -l role -d 'The role to use; the policy\'s default role for you on the resource when left out' -r
complete -c sluice -n "__fish_sluice_using_subcommand connect" -l ttl -d 'How long a new grant should last (e.g. 30m, 8h); the role\'s default when left out. Capped at the role\'s maximum. An active grant you already hold is used as it is' -r
complete -c sluice -n "__fish_sluice_using_subcommand connect" -l reason -d 'Why you need access, for the approvers and the audit trail [default: the command, e.g. "sluice connect"]' -r
complete -c sluice -n "__fish_sluice_using_subcommand connect" -s p -l port -d 'Local port to listen on (127.0.0.1 only); a free one by default' -r
complete -c sluice -n "__fish_sluice_using_subcommand connect" -l output -d 'Output format of the connection details (not used with --exec)' -r -f -a "text\t'For people'
json\t'One JSON document (JSON Lines for streams)'"
complete -c sluice -n "__fish_sluice_using_subcommand connect" -l exec -d 'Run this command with the connection in its environment (PGHOST, PGPORT, PGUSER, PGDATABASE, PGPASSWORD for postgres; KUBECONFIG for kubernetes; SLUICE_SSH_KEY and SLUICE_SSH_KNOWN_HOSTS for ssh; SLUICE_HOST, SLUICE_PORT always), close the tunnel when it exits and exit with its code' -r
complete -c sluice -n "__fish_sluice_using_subcommand connect" -l workload -d 'Authenticate this one command with the platform\'s identity token instead of a stored login (CI steps): github, gitlab, kubernetes, file:PATH or env:VAR' -r
complete -c sluice -n "__fish_sluice_using_subcommand connect" -l audience -d 'The audience to request the workload token for' -r
complete -c sluice -n "__fish_sluice_using_subcommand connect" -l broker -d 'Broker URL (https://HOST:PORT); remembered by `login`' -r
complete -c sluice -n "__fish_sluice_using_subcommand connect" -l ca -d 'PEM file with the CA that signed the broker\'s certificate; remembered by `login`' -r -F
complete -c sluice -n "__fish_sluice_using_subcommand connect" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c sluice -n "__fish_sluice_using_subcommand run" -s r -l role -d 'The role to ask for' -r
complete -c sluice -n "__fish_sluice_using_subcommand run" -l ttl -d 'How long the grant may last at most (e.g. 15m); the role\'s default when left out. It is revoked as soon as CMD exits anyway' -r
complete -c sluice -n "__fish_sluice_using_subcommand run" -l reason -d 'Why you need access, for the approvers and the audit trail [default: "sluice run: " and the program\'s name]' -r
complete -c sluice -n "__fish_sluice_using_subcommand run" -l workload -d 'Authenticate with the platform\'s identity token instead of a stored login (CI steps): github, gitlab, kubernetes, file:PATH or env:VAR' -r
complete -c sluice -n "__fish_sluice_using_subcommand run" -l audience -d 'The audience to request the workload token for' -r
complete -c sluice -n "__fish_sluice_using_subcommand run" -l broker -d 'Broker URL (https://HOST:PORT); remembered by `login`' -r
complete -c sluice -n "__fish_sluice_using_subcommand run" -l ca -d 'PEM file with the CA that signed the broker\'s certificate; remembered by `login`' -r -F
complete -c sluice -n "__fish_sluice_using_subcommand run" -s h -l help -d 'Print help'
complete -c sluice -n "__fish_sluice_using_subcommand ssh" -s r -l role -d 'The role to use; the policy\'s default role for you on the resource when left out' -r
complete -c sluice -n "__fish_sluice_using_subcommand ssh" -l ttl -d 'How long a new grant should last (e.g. 30m, 8h); the role\'s default when left out. Capped at the role\'s maximum. An active grant you already hold is used as it is' -r
complete -c sluice -n "__fish_sluice_using_subcommand ssh" -l reason -d 'Why you need access, for the approvers and the audit trail [default: the command, e.g. "sluice connect"]' -r
complete -c sluice -n "__fish_sluice_using_subcommand ssh" -l ssh -d 'Extra options for ssh, e.g. --ssh=-tt (repeatable)' -r
complete -c sluice -n "__fish_sluice_using_subcommand ssh" -l broker -d 'Broker URL (https://HOST:PORT); remembered by `login`' -r
complete -c sluice -n "__fish_sluice_using_subcommand ssh" -l ca -d 'PEM file with the CA that signed the broker\'s certificate; remembered by `login`' -r -F
complete -c sluice -n "__fish_sluice_using_subcommand ssh" -s h -l help -d 'Print help'
complete -c sluice -n "__fish_sluice_using_subcommand kube" -s r -l role -d 'The role to use; the policy\'s default role for you on the resource when left out' -r
complete -c sluice -n "__fish_sluice_using_subcommand kube" -l ttl -d 'How long a new grant should last (e.g. 30m, 8h); the role\'s default when left out. Capped at the role\'s maximum. An active grant you already hold is used as it is' -r
complete -c sluice -n "__fish_sluice_using_subcommand kube" -l reason -d 'Why you need access, for the approvers and the audit trail [default: the command, e.g. "sluice connect"]' -r
complete -c sluice -n "__fish_sluice_using_subcommand kube" -s n -l namespace -d 'The namespace the kubeconfig\'s context starts in' -r
complete -c sluice -n "__fish_sluice_using_subcommand kube" -l kubectl -d 'The kubectl program to run' -r
complete -c sluice -n "__fish_sluice_using_subcommand kube" -l broker -d 'Broker URL (https://HOST:PORT); remembered by `login`' -r
complete -c sluice -n "__fish_sluice_using_subcommand kube" -l ca -d 'PEM file with the CA that signed the broker\'s certificate; remembered by `login`' -r -F
complete -c sluice -n "__fish_sluice_using_subcommand kube" -s h -l help -d 'Print help'
complete -c sluice -n "__fish_sluice_using_subcommand mcp" -l listen -d 'Serve streamable HTTP on this loopback address (at /mcp) instead of stdio' -r
complete -c sluice -n "__fish_sluice_using_subcommand mcp" -l workload -d 'Authenticate with the platform\'s identity token instead of a stored login (an agent in CI or Kubernetes): github, gitlab, kubernetes, file:PATH or env:VAR' -r
complete -c sluice -n "__fish_sluice_using_subcommand mcp" -l audience -d 'The audience to request the workload token for' -r
complete -c sluice -n "__fish_sluice_using_subcommand mcp" -l max-rows -d 'Most rows a query returns to the agent (a tool call may ask for fewer)' -r
complete -c sluice -n "__fish_sluice_using_subcommand mcp" -l max-bytes -d 'Most bytes of one tool result (rows, command output, response body); more is cut and marked truncated' -r
complete -c sluice -n "__fish_sluice_using_subcommand mcp" -l broker -d 'Broker URL (https://HOST:PORT); remembered by `login`' -r
complete -c sluice -n "__fish_sluice_using_subcommand mcp" -l ca -d 'PEM file with the CA that signed the broker\'s certificate; remembered by `login`' -r -F
complete -c sluice -n "__fish_sluice_using_subcommand mcp" -s h -l help -d 'Print help'
complete -c sluice -n "__fish_sluice_using_subcommand proxy; and not __fish_seen_subcommand_from ssh help" -l broker -d 'Broker URL (https://HOST:PORT); remembered by `login`' -r
complete -c sluice -n "__fish_sluice_using_subcommand proxy; and not __fish_seen_subcommand_from ssh help" -l ca -d 'PEM file with the CA that signed the broker\'s certificate; remembered by `login`' -r -F
complete -c sluice -n "__fish_sluice_using_subcommand proxy; and not __fish_seen_subcommand_from ssh help" -s h -l help -d 'Print help'
complete -c sluice -n "__fish_sluice_using_subcommand proxy; and not __fish_seen_subcommand_from ssh help" -f -a "ssh" -d 'One tunnel to an ssh resource on stdin/stdout (ssh\'s ProxyCommand)'
complete -c sluice -n "__fish_sluice_using_subcommand proxy; and not __fish_seen_subcommand_from ssh help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c sluice -n "__fish_sluice_using_subcommand proxy; and __fish_seen_subcommand_from ssh" -l grant -d 'The active grant to use; without it an active grant is reused or one is asked for' -r
complete -c sluice -n "__fish_sluice_using_subcommand proxy; and __fish_seen_subcommand_from ssh" -s r -l role -d 'The role to ask for when there is no --grant' -r
complete -c sluice -n "__fish_sluice_using_subcommand proxy; and __fish_seen_subcommand_from ssh" -l public-key -d 'The key the broker is to accept for this tunnel' -r -F
complete -c sluice -n "__fish_sluice_using_subcommand proxy; and __fish_seen_subcommand_from ssh" -l suffix -d 'A domain to take off RESOURCE (`.sluice`: ssh was given web.sluice)' -r
complete -c sluice -n "__fish_sluice_using_subcommand proxy; and __fish_seen_subcommand_from ssh" -l known-hosts -d 'Pin the broker\'s SSH host key for RESOURCE (as given) in this known_hosts file first' -r -F
complete -c sluice -n "__fish_sluice_using_subcommand proxy; and __fish_seen_subcommand_from ssh" -l broker -d 'Broker URL (https://HOST:PORT); remembered by `login`' -r
complete -c sluice -n "__fish_sluice_using_subcommand proxy; and __fish_seen_subcommand_from ssh" -l ca -d 'PEM file with the CA that signed the broker\'s certificate; remembered by `login`' -r -F
complete -c sluice -n "__fish_sluice_using_subcommand proxy; and __fish_seen_subcommand_from ssh" -s h -l help -d 'Print help'
complete -c sluice -n "__fish_sluice_using_subcommand proxy; and __fish_seen_subcommand_from help" -f -a "ssh" -d 'One tunnel to an ssh resource on stdin/stdout (ssh\'s ProxyCommand)'
complete -c sluice -n "__fish_sluice_using_subcommand proxy; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c sluice -n "__fish_sluice_using_subcommand config; and not __fish_seen_subcommand_from ssh kube help" -l broker -d 'Broker URL (https://HOST:PORT); remembered by `login`' -r
complete -c sluice -n "__fish_sluice_using_subcommand config; and not __fish_seen_subcommand_from ssh kube help" -l ca -d 'PEM file with the CA that signed the broker\'s certificate; remembered by `login`' -r -F
complete -c sluice -n "__fish_sluice_using_subcommand config; and not __fish_seen_subcommand_from ssh kube help" -s h -l help -d 'Print help'
complete -c sluice -n "__fish_sluice_using_subcommand config; and not __fish_seen_subcommand_from ssh kube help" -f -a "ssh" -d 'Write an ssh_config block for `Include`: `ssh web.sluice`, `scp f web.sluice:`, `sftp`, `rsync` and `git clone web.sluice:repo.git` then go through the broker, reusing your active grant or asking for one, with the broker\'s host key pinned'
complete -c sluice -n "__fish_sluice_using_subcommand config; and not __fish_seen_subcommand_from ssh kube help" -f -a "kube" -d 'Write a context into your kubeconfig whose server is the broker and whose credential is `sluice kube-credential RES`: plain `kubectl --context RES` then works while you hold a grant (reused, or asked for when kubectl first needs it)'
complete -c sluice -n "__fish_sluice_using_subcommand config; and not __fish_seen_subcommand_from ssh kube help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c sluice -n "__fish_sluice_using_subcommand config; and __fish_seen_subcommand_from ssh" -s o -l output -d 'Where to write the block; `-` prints it [default: ssh_config in the CLI\'s directory]' -r -F
complete -c sluice -n "__fish_sluice_using_subcommand config; and __fish_seen_subcommand_from ssh" -l domain -d 'The domain ssh host names end with' -r
complete -c sluice -n "__fish_sluice_using_subcommand config; and __fish_seen_subcommand_from ssh" -l broker -d 'Broker URL (https://HOST:PORT); remembered by `login`' -r
complete -c sluice -n "__fish_sluice_using_subcommand config; and __fish_seen_subcommand_from ssh" -l ca -d 'PEM file with the CA that signed the broker\'s certificate; remembered by `login`' -r -F
complete -c sluice -n "__fish_sluice_using_subcommand config; and __fish_seen_subcommand_from ssh" -s h -l help -d 'Print help'
complete -c sluice -n "__fish_sluice_using_subcommand config; and __fish_seen_subcommand_from kube" -s r -l role -d 'The role the credential asks for when you hold no grant (the policy\'s default when left out)' -r
complete -c sluice -n "__fish_sluice_using_subcommand config; and __fish_seen_subcommand_from kube" -l context -d 'The context\'s name [default: the resource\'s]' -r
complete -c sluice -n "__fish_sluice_using_subcommand config; and __fish_seen_subcommand_from kube" -s n -l namespace -d 'The namespace the context starts in' -r
complete -c sluice -n "__fish_sluice_using_subcommand config; and __fish_seen_subcommand_from kube" -l kubeconfig -d 'The kubeconfig file to write [default: kubectl\'s: $KUBECONFIG or ~/.kube/config]' -r -F
complete -c sluice -n "__fish_sluice_using_subcommand config; and __fish_seen_subcommand_from kube" -l kubectl -d 'The kubectl program that writes it' -r
complete -c sluice -n "__fish_sluice_using_subcommand config; and __fish_seen_subcommand_from kube" -l broker -d 'Broker URL (https://HOST:PORT); remembered by `login`' -r
complete -c sluice -n "__fish_sluice_using_subcommand config; and __fish_seen_subcommand_from kube" -l ca -d 'PEM file with the CA that signed the broker\'s certificate; remembered by `login`' -r -F
complete -c sluice -n "__fish_sluice_using_subcommand config; and __fish_seen_subcommand_from kube" -s h -l help -d 'Print help'
complete -c sluice -n "__fish_sluice_using_subcommand config; and __fish_seen_subcommand_from help" -f -a "ssh" -d 'Write an ssh_config block for `Include`: `ssh web.sluice`, `scp f web.sluice:`, `sftp`, `rsync` and `git clone web.sluice:repo.git` then go through the broker, reusing your active grant or asking for one, with the broker\'s host key pinned'
complete -c sluice -n "__fish_sluice_using_subcommand config; and __fish_seen_subcommand_from help" -f -a "kube" -d 'Write a context into your kubeconfig whose server is the broker and whose credential is `sluice kube-credential RES`: plain `kubectl --context RES` then works while you hold a grant (reused, or asked for when kubectl first needs it)'
complete -c sluice -n "__fish_sluice_using_subcommand config; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c sluice -n "__fish_sluice_using_subcommand kube-credential" -s r -l role -d 'The role to use; the policy\'s default role for you on the resource when left out' -r
complete -c sluice -n "__fish_sluice_using_subcommand kube-credential" -l ttl -d 'How long a new grant should last (e.g. 30m, 8h); the role\'s default when left out. Capped at the role\'s maximum. An active grant you already hold is used as it is' -r
complete -c sluice -n "__fish_sluice_using_subcommand kube-credential" -l reason -d 'Why you need access, for the approvers and the audit trail [default: the command, e.g. "sluice connect"]' -r
complete -c sluice -n "__fish_sluice_using_subcommand kube-credential" -l broker -d 'Broker URL (https://HOST:PORT); remembered by `login`' -r
complete -c sluice -n "__fish_sluice_using_subcommand kube-credential" -l ca -d 'PEM file with the CA that signed the broker\'s certificate; remembered by `login`' -r -F
complete -c sluice -n "__fish_sluice_using_subcommand kube-credential" -s h -l help -d 'Print help'
complete -c sluice -n "__fish_sluice_using_subcommand grant; and not __fish_seen_subcommand_from request wait list revoke help" -l broker -d 'Broker URL (https://HOST:PORT); remembered by `login`' -r
complete -c sluice -n "__fish_sluice_using_subcommand grant; and not __fish_seen_subcommand_from request wait list revoke help" -l ca -d 'PEM file with the CA that signed the broker\'s certificate; remembered by `login`' -r -F
complete -c sluice -n "__fish_sluice_using_subcommand grant; and not __fish_seen_subcommand_from request wait list revoke help" -s h -l help -d 'Print help'
complete -c sluice -n "__fish_sluice_using_subcommand grant; and not __fish_seen_subcommand_from request wait list revoke help" -f -a "request" -d 'Ask for a role on a resource for a time. Policy grants it at once or sends it to approvers; --wait waits for their decision'
complete -c sluice -n "__fish_sluice_using_subcommand grant; and not __fish_seen_subcommand_from request wait list revoke help" -f -a "wait" -d 'Wait for the decision on a pending request of yours'
complete -c sluice -n "__fish_sluice_using_subcommand grant; and not __fish_seen_subcommand_from request wait list revoke help" -f -a "list" -d 'List your active and pending grants (with --all, ended ones too)'
complete -c sluice -n "__fish_sluice_using_subcommand grant; and not __fish_seen_subcommand_from request wait list revoke help" -f -a "revoke" -d 'End a grant now (yours, or one you approve for); its open sessions are closed'
complete -c sluice -n "__fish_sluice_using_subcommand grant; and not __fish_seen_subcommand_from request wait list revoke help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c sluice -n "__fish_sluice_using_subcommand grant; and __fish_seen_subcommand_from request" -s r -l role -d 'The role to ask for' -r
complete -c sluice -n "__fish_sluice_using_subcommand grant; and __fish_seen_subcommand_from request" -l ttl -d 'How long the grant should last once active (e.g. 30m, 8h, 1h30m); the role\'s default when left out. Capped at the role\'s maximum, and the answer says so' -r
complete -c sluice -n "__fish_sluice_using_subcommand grant; and __fish_seen_subcommand_from request" -l reason -d 'Why you need access, for the approvers and the audit trail' -r
complete -c sluice -n "__fish_sluice_using_subcommand grant; and __fish_seen_subcommand_from request" -l output -d 'Output format' -r -f -a "text\t'For people'
json\t'One JSON document (JSON Lines for streams)'"
complete -c sluice -n "__fish_sluice_using_subcommand grant; and __fish_seen_subcommand_from request" -l broker -d 'Broker URL (https://HOST:PORT); remembered by `login`' -r
complete -c sluice -n "__fish_sluice_using_subcommand grant; and __fish_seen_subcommand_from request" -l ca -d 'PEM file with the CA that signed the broker\'s certificate; remembered by `login`' -r -F
complete -c sluice -n "__fish_sluice_using_subcommand grant; and __fish_seen_subcommand_from request" -l wait -d 'Wait until the request is approved, denied or lapses'
complete -c sluice -n "__fish_sluice_using_subcommand grant; and __fish_seen_subcommand_from request" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c sluice -n "__fish_sluice_using_subcommand grant; and __fish_seen_subcommand_from wait" -l output -d 'Output format' -r -f -a "text\t'For people'
json\t'One JSON document (JSON Lines for streams)'"
complete -c sluice -n "__fish_sluice_using_subcommand grant; and __fish_seen_subcommand_from wait" -l broker -d 'Broker URL (https://HOST:PORT); remembered by `login`' -r
complete -c sluice -n "__fish_sluice_using_subcommand grant; and __fish_seen_subcommand_from wait" -l ca -d 'PEM file with the CA that signed the broker\'s certificate; remembered by `login`' -r -F
complete -c sluice -n "__fish_sluice_using_subcommand grant; and __fish_seen_subcommand_from wait" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c sluice -n "__fish_sluice_using_subcommand grant; and __fish_seen_subcommand_from list" -l output -d 'Output format' -r -f -a "text\t'For people'
json\t'One JSON document (JSON Lines for streams)'"
complete -c sluice -n "__fish_sluice_using_subcommand grant; and __fish_seen_subcommand_from list" -l broker -d 'Broker URL (https://HOST:PORT); remembered by `login`' -r
complete -c sluice -n "__fish_sluice_using_subcommand grant; and __fish_seen_subcommand_from list" -l ca -d 'PEM file with the CA that signed the broker\'s certificate; remembered by `login`' -r -F
complete -c sluice -n "__fish_sluice_using_subcommand grant; and __fish_seen_subcommand_from list" -l all -d 'Include denied, expired and revoked grants'
complete -c sluice -n "__fish_sluice_using_subcommand grant; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c sluice -n "__fish_sluice_using_subcommand grant; and __fish_seen_subcommand_from revoke" -l reason -d 'Why, for the audit trail' -r
complete -c sluice -n "__fish_sluice_using_subcommand grant; and __fish_seen_subcommand_from revoke" -l output -d 'Output format' -r -f -a "text\t'For people'
json\t'One JSON document (JSON Lines for streams)'"
complete -c sluice -n "__fish_sluice_using_subcommand grant; and __fish_seen_subcommand_from revoke" -l broker -d 'Broker URL (https://HOST:PORT); remembered by `login`' -r
complete -c sluice -n "__fish_sluice_using_subcommand grant; and __fish_seen_subcommand_from revoke" -l ca -d 'PEM file with the CA that signed the broker\'s certificate; remembered by `login`' -r -F
complete -c sluice -n "__fish_sluice_using_subcommand grant; and __fish_seen_subcommand_from revoke" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c sluice -n "__fish_sluice_using_subcommand grant; and __fish_seen_subcommand_from help" -f -a "request" -d 'Ask for a role on a resource for a time. Policy grants it at once or sends it to approvers; --wait waits for their decision'
complete -c sluice -n "__fish_sluice_using_subcommand grant; and __fish_seen_subcommand_from help" -f -a "wait" -d 'Wait for the decision on a pending request of yours'
complete -c sluice -n "__fish_sluice_using_subcommand grant; and __fish_seen_subcommand_from help" -f -a "list" -d 'List your active and pending grants (with --all, ended ones too)'
complete -c sluice -n "__fish_sluice_using_subcommand grant; and __fish_seen_subcommand_from help" -f -a "revoke" -d 'End a grant now (yours, or one you approve for); its open sessions are closed'
complete -c sluice -n "__fish_sluice_using_subcommand grant; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c sluice -n "__fish_sluice_using_subcommand approvals" -l output -d 'Output format (JSON Lines with --watch)' -r -f -a "text\t'For people'
json\t'One JSON document (JSON Lines for streams)'"
complete -c sluice -n "__fish_sluice_using_subcommand approvals" -l broker -d 'Broker URL (https://HOST:PORT); remembered by `login`' -r
complete -c sluice -n "__fish_sluice_using_subcommand approvals" -l ca -d 'PEM file with the CA that signed the broker\'s certificate; remembered by `login`' -r -F
complete -c sluice -n "__fish_sluice_using_subcommand approvals" -l watch -d 'Keep running: wait for new requests and held statements and prompt for each (approve, deny or skip) on a terminal; elsewhere, or with --output json, print each new one without prompting. Ctrl-C stops'
complete -c sluice -n "__fish_sluice_using_subcommand approvals" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c sluice -n "__fish_sluice_using_subcommand approve" -l reason -d 'Why, for the requester and the audit trail' -r
complete -c sluice -n "__fish_sluice_using_subcommand approve" -l output -d 'Output format' -r -f -a "text\t'For people'
json\t'One JSON document (JSON Lines for streams)'"
complete -c sluice -n "__fish_sluice_using_subcommand approve" -l broker -d 'Broker URL (https://HOST:PORT); remembered by `login`' -r
complete -c sluice -n "__fish_sluice_using_subcommand approve" -l ca -d 'PEM file with the CA that signed the broker\'s certificate; remembered by `login`' -r -F
complete -c sluice -n "__fish_sluice_using_subcommand approve" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c sluice -n "__fish_sluice_using_subcommand deny" -l reason -d 'Why, shown to the requester' -r
complete -c sluice -n "__fish_sluice_using_subcommand deny" -l output -d 'Output format' -r -f -a "text\t'For people'
json\t'One JSON document (JSON Lines for streams)'"
complete -c sluice -n "__fish_sluice_using_subcommand deny" -l broker -d 'Broker URL (https://HOST:PORT); remembered by `login`' -r
complete -c sluice -n "__fish_sluice_using_subcommand deny" -l ca -d 'PEM file with the CA that signed the broker\'s certificate; remembered by `login`' -r -F
complete -c sluice -n "__fish_sluice_using_subcommand deny" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c sluice -n "__fish_sluice_using_subcommand sessions; and not __fish_seen_subcommand_from list show replay export help" -l broker -d 'Broker URL (https://HOST:PORT); remembered by `login`' -r
complete -c sluice -n "__fish_sluice_using_subcommand sessions; and not __fish_seen_subcommand_from list show replay export help" -l ca -d 'PEM file with the CA that signed the broker\'s certificate; remembered by `login`' -r -F
complete -c sluice -n "__fish_sluice_using_subcommand sessions; and not __fish_seen_subcommand_from list show replay export help" -s h -l help -d 'Print help'
complete -c sluice -n "__fish_sluice_using_subcommand sessions; and not __fish_seen_subcommand_from list show replay export help" -f -a "list" -d 'Sessions through the broker, newest first: who, what, when, how they ended'
complete -c sluice -n "__fish_sluice_using_subcommand sessions; and not __fish_seen_subcommand_from list show replay export help" -f -a "show" -d 'One session\'s timeline: statements, decisions, approvals, durations, rows'
complete -c sluice -n "__fish_sluice_using_subcommand sessions; and not __fish_seen_subcommand_from list show replay export help" -f -a "replay" -d 'Replays a session as it happened: each statement and its outcome at its moment, or, for an SSH terminal session, what the terminal showed, written to your terminal at its pace'
complete -c sluice -n "__fish_sluice_using_subcommand sessions; and not __fish_seen_subcommand_from list show replay export help" -f -a "export" -d 'Writes a session\'s recording to stdout: `asciicast` (a terminal session, playable with `asciinema play`) or `jsonl` (the session, then every event, one JSON object a line)'
complete -c sluice -n "__fish_sluice_using_subcommand sessions; and not __fish_seen_subcommand_from list show replay export help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c sluice -n "__fish_sluice_using_subcommand sessions; and __fish_seen_subcommand_from list" -l resource -d 'Only sessions on this resource' -r
complete -c sluice -n "__fish_sluice_using_subcommand sessions; and __fish_seen_subcommand_from list" -l user -d 'Only this user\'s (or workload\'s) sessions; other people\'s need policy.auditors' -r
complete -c sluice -n "__fish_sluice_using_subcommand sessions; and __fish_seen_subcommand_from list" -l since -d 'Only sessions started within this long (e.g. 24h, 7d)' -r
complete -c sluice -n "__fish_sluice_using_subcommand sessions; and __fish_seen_subcommand_from list" -l output -d 'Output format' -r -f -a "text\t'For people'
json\t'One JSON document (JSON Lines for streams)'"
complete -c sluice -n "__fish_sluice_using_subcommand sessions; and __fish_seen_subcommand_from list" -l broker -d 'Broker URL (https://HOST:PORT); remembered by `login`' -r
complete -c sluice -n "__fish_sluice_using_subcommand sessions; and __fish_seen_subcommand_from list" -l ca -d 'PEM file with the CA that signed the broker\'s certificate; remembered by `login`' -r -F
complete -c sluice -n "__fish_sluice_using_subcommand sessions; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c sluice -n "__fish_sluice_using_subcommand sessions; and __fish_seen_subcommand_from show" -l output -d 'Output format' -r -f -a "text\t'For people'
json\t'One JSON document (JSON Lines for streams)'"
complete -c sluice -n "__fish_sluice_using_subcommand sessions; and __fish_seen_subcommand_from show" -l broker -d 'Broker URL (https://HOST:PORT); remembered by `login`' -r
complete -c sluice -n "__fish_sluice_using_subcommand sessions; and __fish_seen_subcommand_from show" -l ca -d 'PEM file with the CA that signed the broker\'s certificate; remembered by `login`' -r -F
complete -c sluice -n "__fish_sluice_using_subcommand sessions; and __fish_seen_subcommand_from show" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c sluice -n "__fish_sluice_using_subcommand sessions; and __fish_seen_subcommand_from replay" -l speed -d 'Playback speed: 2 is twice as fast, 0 prints everything at once' -r
complete -c sluice -n "__fish_sluice_using_subcommand sessions; and __fish_seen_subcommand_from replay" -l broker -d 'Broker URL (https://HOST:PORT); remembered by `login`' -r
complete -c sluice -n "__fish_sluice_using_subcommand sessions; and __fish_seen_subcommand_from replay" -l ca -d 'PEM file with the CA that signed the broker\'s certificate; remembered by `login`' -r -F
complete -c sluice -n "__fish_sluice_using_subcommand sessions; and __fish_seen_subcommand_from replay" -s h -l help -d 'Print help'
complete -c sluice -n "__fish_sluice_using_subcommand sessions; and __fish_seen_subcommand_from export" -l format -d 'The format' -r -f -a "asciicast\t'asciicast v2: a header line, then `[seconds, "o", "text"]` per terminal event'
jsonl\t'The session as a JSON object, then one JSON object per event'"
complete -c sluice -n "__fish_sluice_using_subcommand sessions; and __fish_seen_subcommand_from export" -l broker -d 'Broker URL (https://HOST:PORT); remembered by `login`' -r
complete -c sluice -n "__fish_sluice_using_subcommand sessions; and __fish_seen_subcommand_from export" -l ca -d 'PEM file with the CA that signed the broker\'s certificate; remembered by `login`' -r -F
complete -c sluice -n "__fish_sluice_using_subcommand sessions; and __fish_seen_subcommand_from export" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c sluice -n "__fish_sluice_using_subcommand sessions; and __fish_seen_subcommand_from help" -f -a "list" -d 'Sessions through the broker, newest first: who, what, when, how they ended'
complete -c sluice -n "__fish_sluice_using_subcommand sessions; and __fish_seen_subcommand_from help" -f -a "show" -d 'One session\'s timeline: statements, decisions, approvals, durations, rows'
complete -c sluice -n "__fish_sluice_using_subcommand sessions; and __fish_seen_subcommand_from help" -f -a "replay" -d 'Replays a session as it happened: each statement and its outcome at its moment, or, for an SSH terminal session, what the terminal showed, written to your terminal at its pace'
complete -c sluice -n "__fish_sluice_using_subcommand sessions; and __fish_seen_subcommand_from help" -f -a "export" -d 'Writes a session\'s recording to stdout: `asciicast` (a terminal session, playable with `asciinema play`) or `jsonl` (the session, then every event, one JSON object a line)'
complete -c sluice -n "__fish_sluice_using_subcommand sessions; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c sluice -n "__fish_sluice_using_subcommand audit; and not __fish_seen_subcommand_from verify export help" -l broker -d 'Broker URL (https://HOST:PORT); remembered by `login`' -r
complete -c sluice -n "__fish_sluice_using_subcommand audit; and not __fish_seen_subcommand_from verify export help" -l ca -d 'PEM file with the CA that signed the broker\'s certificate; remembered by `login`' -r -F
complete -c sluice -n "__fish_sluice_using_subcommand audit; and not __fish_seen_subcommand_from verify export help" -s h -l help -d 'Print help'
complete -c sluice -n "__fish_sluice_using_subcommand audit; and not __fish_seen_subcommand_from verify export help" -f -a "verify" -d 'Fetch the whole audit trail and check it here: every record\'s hash, every link to the record before it, and every checkpoint the broker signed. Names the first broken link'
complete -c sluice -n "__fish_sluice_using_subcommand audit; and not __fish_seen_subcommand_from verify export help" -f -a "export" -d 'Write audit records as JSON Lines (one record per line, oldest first) for a SIEM'
complete -c sluice -n "__fish_sluice_using_subcommand audit; and not __fish_seen_subcommand_from verify export help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c sluice -n "__fish_sluice_using_subcommand audit; and __fish_seen_subcommand_from verify" -l key-id -d 'The key id the checkpoints must be signed with (printed by an earlier verify); by default the broker\'s current key, as the broker reports it' -r
complete -c sluice -n "__fish_sluice_using_subcommand audit; and __fish_seen_subcommand_from verify" -l output -d 'Output format' -r -f -a "text\t'For people'
json\t'One JSON document (JSON Lines for streams)'"
complete -c sluice -n "__fish_sluice_using_subcommand audit; and __fish_seen_subcommand_from verify" -l broker -d 'Broker URL (https://HOST:PORT); remembered by `login`' -r
complete -c sluice -n "__fish_sluice_using_subcommand audit; and __fish_seen_subcommand_from verify" -l ca -d 'PEM file with the CA that signed the broker\'s certificate; remembered by `login`' -r -F
complete -c sluice -n "__fish_sluice_using_subcommand audit; and __fish_seen_subcommand_from verify" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c sluice -n "__fish_sluice_using_subcommand audit; and __fish_seen_subcommand_from export" -l since -d 'Records from this time on: how far back from now (24h, 7d, 90m) or an RFC 3339 time (2026-03-01T00:00:00Z, 2026-03-01T09:00:00+01:00)' -r
complete -c sluice -n "__fish_sluice_using_subcommand audit; and __fish_seen_subcommand_from export" -l until -d 'Records before this time (same forms); up to now when left out' -r
complete -c sluice -n "__fish_sluice_using_subcommand audit; and __fish_seen_subcommand_from export" -s o -l output -d 'Write to FILE (created or replaced) instead of standard output' -r -F
complete -c sluice -n "__fish_sluice_using_subcommand audit; and __fish_seen_subcommand_from export" -l broker -d 'Broker URL (https://HOST:PORT); remembered by `login`' -r
complete -c sluice -n "__fish_sluice_using_subcommand audit; and __fish_seen_subcommand_from export" -l ca -d 'PEM file with the CA that signed the broker\'s certificate; remembered by `login`' -r -F
complete -c sluice -n "__fish_sluice_using_subcommand audit; and __fish_seen_subcommand_from export" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c sluice -n "__fish_sluice_using_subcommand audit; and __fish_seen_subcommand_from help" -f -a "verify" -d 'Fetch the whole audit trail and check it here: every record\'s hash, every link to the record before it, and every checkpoint the broker signed. Names the first broken link'
complete -c sluice -n "__fish_sluice_using_subcommand audit; and __fish_seen_subcommand_from help" -f -a "export" -d 'Write audit records as JSON Lines (one record per line, oldest first) for a SIEM'
complete -c sluice -n "__fish_sluice_using_subcommand audit; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c sluice -n "__fish_sluice_using_subcommand completions" -l broker -d 'Broker URL (https://HOST:PORT); remembered by `login`' -r
complete -c sluice -n "__fish_sluice_using_subcommand completions" -l ca -d 'PEM file with the CA that signed the broker\'s certificate; remembered by `login`' -r -F
complete -c sluice -n "__fish_sluice_using_subcommand completions" -s h -l help -d 'Print help'
complete -c sluice -n "__fish_sluice_using_subcommand help; and not __fish_seen_subcommand_from login logout whoami resources connect run ssh kube mcp proxy config kube-credential grant approvals approve deny sessions audit completions help" -f -a "login" -d 'Log in to the broker: approve a code at your identity provider (OIDC device flow), or pipe in a token with --token-stdin'
complete -c sluice -n "__fish_sluice_using_subcommand help; and not __fish_seen_subcommand_from login logout whoami resources connect run ssh kube mcp proxy config kube-credential grant approvals approve deny sessions audit completions help" -f -a "logout" -d 'Forget the stored session token'
complete -c sluice -n "__fish_sluice_using_subcommand help; and not __fish_seen_subcommand_from login logout whoami resources connect run ssh kube mcp proxy config kube-credential grant approvals approve deny sessions audit completions help" -f -a "whoami" -d 'Show who the broker thinks you are'
complete -c sluice -n "__fish_sluice_using_subcommand help; and not __fish_seen_subcommand_from login logout whoami resources connect run ssh kube mcp proxy config kube-credential grant approvals approve deny sessions audit completions help" -f -a "resources" -d 'List the resources you may ask for, with the roles policy lets you request on each'
complete -c sluice -n "__fish_sluice_using_subcommand help; and not __fish_seen_subcommand_from login logout whoami resources connect run ssh kube mcp proxy config kube-credential grant approvals approve deny sessions audit completions help" -f -a "connect" -d 'Open a tunnel to a resource on 127.0.0.1 and keep it open until Ctrl-C (or until the `--exec` command exits). Uses your active grant for the resource and role, or asks for one and waits for its approval'
complete -c sluice -n "__fish_sluice_using_subcommand help; and not __fish_seen_subcommand_from login logout whoami resources connect run ssh kube mcp proxy config kube-credential grant approvals approve deny sessions audit completions help" -f -a "run" -d 'Run one command with a fresh grant: ask for it, wait for approval, connect, run CMD with the connection in its environment, then revoke the grant when CMD exits (one CI step)'
complete -c sluice -n "__fish_sluice_using_subcommand help; and not __fish_seen_subcommand_from login logout whoami resources connect run ssh kube mcp proxy config kube-credential grant approvals approve deny sessions audit completions help" -f -a "ssh" -d 'Run the system ssh (or scp\'s/rsync\'s ssh) through the broker under a grant: the broker logs in to the host with its own key and decides each command'
complete -c sluice -n "__fish_sluice_using_subcommand help; and not __fish_seen_subcommand_from login logout whoami resources connect run ssh kube mcp proxy config kube-credential grant approvals approve deny sessions audit completions help" -f -a "kube" -d 'Run kubectl through the broker under a grant: a temporary kubeconfig points it at a local tunnel with a one-time token; the broker decides every API request and calls the cluster with its own credential'
complete -c sluice -n "__fish_sluice_using_subcommand help; and not __fish_seen_subcommand_from login logout whoami resources connect run ssh kube mcp proxy config kube-credential grant approvals approve deny sessions audit completions help" -f -a "mcp" -d 'Serve Sluice to an AI agent as MCP tools (stdio by default, the transport MCP clients launch): list resources, ask for access, run queries, commands and requests through the broker\'s guardrails, read masked results, end the grant. The agent never receives a credential or a tunnel secret'
complete -c sluice -n "__fish_sluice_using_subcommand help; and not __fish_seen_subcommand_from login logout whoami resources connect run ssh kube mcp proxy config kube-credential grant approvals approve deny sessions audit completions help" -f -a "proxy" -d 'Helpers other programs run (ssh\'s ProxyCommand)'
complete -c sluice -n "__fish_sluice_using_subcommand help; and not __fish_seen_subcommand_from login logout whoami resources connect run ssh kube mcp proxy config kube-credential grant approvals approve deny sessions audit completions help" -f -a "config" -d 'Write configuration for other tools: `sluice config ssh` lets plain ssh, scp, sftp, rsync and git reach ssh resources as RESOURCE.sluice'
complete -c sluice -n "__fish_sluice_using_subcommand help; and not __fish_seen_subcommand_from login logout whoami resources connect run ssh kube mcp proxy config kube-credential grant approvals approve deny sessions audit completions help" -f -a "kube-credential" -d 'A kubectl exec credential plugin (written into kubeconfigs by `sluice config kube`): prints an ExecCredential for the broker\'s Kubernetes endpoint under your grant on RES, asking for one when you hold none'
complete -c sluice -n "__fish_sluice_using_subcommand help; and not __fish_seen_subcommand_from login logout whoami resources connect run ssh kube mcp proxy config kube-credential grant approvals approve deny sessions audit completions help" -f -a "grant" -d 'Ask for, wait for, list and revoke just-in-time grants (a role on a resource for a time)'
complete -c sluice -n "__fish_sluice_using_subcommand help; and not __fish_seen_subcommand_from login logout whoami resources connect run ssh kube mcp proxy config kube-credential grant approvals approve deny sessions audit completions help" -f -a "approvals" -d 'Show the pending requests and held statements you may approve or deny; with --watch, wait for new ones and prompt for each as it arrives'
complete -c sluice -n "__fish_sluice_using_subcommand help; and not __fish_seen_subcommand_from login logout whoami resources connect run ssh kube mcp proxy config kube-credential grant approvals approve deny sessions audit completions help" -f -a "approve" -d 'Approve a pending request (one approver\'s yes; some roles need more than one), or a statement held in a live session (an `s_…` id), which then runs at once'
complete -c sluice -n "__fish_sluice_using_subcommand help; and not __fish_seen_subcommand_from login logout whoami resources connect run ssh kube mcp proxy config kube-credential grant approvals approve deny sessions audit completions help" -f -a "deny" -d 'Deny a pending request, or a statement held in a live session (an `s_…` id); the reason is shown to the requester'
complete -c sluice -n "__fish_sluice_using_subcommand help; and not __fish_seen_subcommand_from login logout whoami resources connect run ssh kube mcp proxy config kube-credential grant approvals approve deny sessions audit completions help" -f -a "sessions" -d 'List, show and replay recorded sessions: yours, or everyone\'s if you are an auditor (policy.auditors)'
complete -c sluice -n "__fish_sluice_using_subcommand help; and not __fish_seen_subcommand_from login logout whoami resources connect run ssh kube mcp proxy config kube-credential grant approvals approve deny sessions audit completions help" -f -a "audit" -d 'Check the broker\'s tamper-evident audit trail, or export it for a SIEM (auditors only: policy.auditors)'
complete -c sluice -n "__fish_sluice_using_subcommand help; and not __fish_seen_subcommand_from login logout whoami resources connect run ssh kube mcp proxy config kube-credential grant approvals approve deny sessions audit completions help" -f -a "completions" -d 'Print shell completions'
complete -c sluice -n "__fish_sluice_using_subcommand help; and not __fish_seen_subcommand_from login logout whoami resources connect run ssh kube mcp proxy config kube-credential grant approvals approve deny sessions audit completions help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c sluice -n "__fish_sluice_using_subcommand help; and __fish_seen_subcommand_from proxy" -f -a "ssh" -d 'One tunnel to an ssh resource on stdin/stdout (ssh\'s ProxyCommand)'
complete -c sluice -n "__fish_sluice_using_subcommand help; and __fish_seen_subcommand_from config" -f -a "ssh" -d 'Write an ssh_config block for `Include`: `ssh web.sluice`, `scp f web.sluice:`, `sftp`, `rsync` and `git clone web.sluice:repo.git` then go through the broker, reusing your active grant or asking for one, with the broker\'s host key pinned'
complete -c sluice -n "__fish_sluice_using_subcommand help; and __fish_seen_subcommand_from config" -f -a "kube" -d 'Write a context into your kubeconfig whose server is the broker and whose credential is `sluice kube-credential RES`: plain `kubectl --context RES` then works while you hold a grant (reused, or asked for when kubectl first needs it)'
complete -c sluice -n "__fish_sluice_using_subcommand help; and __fish_seen_subcommand_from grant" -f -a "request" -d 'Ask for a role on a resource for a time. Policy grants it at once or sends it to approvers; --wait waits for their decision'
complete -c sluice -n "__fish_sluice_using_subcommand help; and __fish_seen_subcommand_from grant" -f -a "wait" -d 'Wait for the decision on a pending request of yours'
complete -c sluice -n "__fish_sluice_using_subcommand help; and __fish_seen_subcommand_from grant" -f -a "list" -d 'List your active and pending grants (with --all, ended ones too)'
complete -c sluice -n "__fish_sluice_using_subcommand help; and __fish_seen_subcommand_from grant" -f -a "revoke" -d 'End a grant now (yours, or one you approve for); its open sessions are closed'
complete -c sluice -n "__fish_sluice_using_subcommand help; and __fish_seen_subcommand_from sessions" -f -a "list" -d 'Sessions through the broker, newest first: who, what, when, how they ended'
complete -c sluice -n "__fish_sluice_using_subcommand help; and __fish_seen_subcommand_from sessions" -f -a "show" -d 'One session\'s timeline: statements, decisions, approvals, durations, rows'
complete -c sluice -n "__fish_sluice_using_subcommand help; and __fish_seen_subcommand_from sessions" -f -a "replay" -d 'Replays a session as it happened: each statement and its outcome at its moment, or, for an SSH terminal session, what the terminal showed, written to your terminal at its pace'
complete -c sluice -n "__fish_sluice_using_subcommand help; and __fish_seen_subcommand_from sessions" -f -a "export" -d 'Writes a session\'s recording to stdout: `asciicast` (a terminal session, playable with `asciinema play`) or `jsonl` (the session, then every event, one JSON object a line)'
complete -c sluice -n "__fish_sluice_using_subcommand help; and __fish_seen_subcommand_from audit" -f -a "verify" -d 'Fetch the whole audit trail and check it here: every record\'s hash, every link to the record before it, and every checkpoint the broker signed. Names the first broken link'
complete -c sluice -n "__fish_sluice_using_subcommand help; and __fish_seen_subcommand_from audit" -f -a "export" -d 'Write audit records as JSON Lines (one record per line, oldest first) for a SIEM'
