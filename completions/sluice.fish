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
complete -c sluice -n "__fish_sluice_needs_command" -f -a "connect" -d 'Open a tunnel to a resource on 127.0.0.1 and keep it open until Ctrl-C (or until the `--exec` command exits)'
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
complete -c sluice -n "__fish_sluice_using_subcommand connect" -s p -l port -d 'Local port to listen on (127.0.0.1 only); a free one by default' -r
complete -c sluice -n "__fish_sluice_using_subcommand connect" -l output -d 'Output format of the connection details (not used with --exec)' -r -f -a "text\t'For people'
json\t'One JSON document (JSON Lines for streams)'"
complete -c sluice -n "__fish_sluice_using_subcommand connect" -l exec -d 'Run this command with the connection in its environment (PGHOST, PGPORT, PGUSER, PGDATABASE, PGPASSWORD for postgres; SLUICE_HOST, SLUICE_PORT for tcp), close the tunnel when it exits and exit with its code' -r
complete -c sluice -n "__fish_sluice_using_subcommand connect" -l workload -d 'Authenticate this one command with the platform\'s identity token instead of a stored login (CI steps): github, gitlab, kubernetes, file:PATH or env:VAR' -r
complete -c sluice -n "__fish_sluice_using_subcommand connect" -l audience -d 'The audience to request the workload token for' -r
complete -c sluice -n "__fish_sluice_using_subcommand connect" -l broker -d 'Broker URL (https://HOST:PORT); remembered by `login`' -r
complete -c sluice -n "__fish_sluice_using_subcommand connect" -l ca -d 'PEM file with the CA that signed the broker\'s certificate; remembered by `login`' -r -F
complete -c sluice -n "__fish_sluice_using_subcommand connect" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c sluice -n "__fish_sluice_using_subcommand completions" -l broker -d 'Broker URL (https://HOST:PORT); remembered by `login`' -r
complete -c sluice -n "__fish_sluice_using_subcommand completions" -l ca -d 'PEM file with the CA that signed the broker\'s certificate; remembered by `login`' -r -F
complete -c sluice -n "__fish_sluice_using_subcommand completions" -s h -l help -d 'Print help'
complete -c sluice -n "__fish_sluice_using_subcommand help; and not __fish_seen_subcommand_from login logout whoami connect completions help" -f -a "login" -d 'Log in to the broker: approve a code at your identity provider (OIDC device flow), or pipe in a token with --token-stdin'
complete -c sluice -n "__fish_sluice_using_subcommand help; and not __fish_seen_subcommand_from login logout whoami connect completions help" -f -a "logout" -d 'Forget the stored session token'
complete -c sluice -n "__fish_sluice_using_subcommand help; and not __fish_seen_subcommand_from login logout whoami connect completions help" -f -a "whoami" -d 'Show who the broker thinks you are'
complete -c sluice -n "__fish_sluice_using_subcommand help; and not __fish_seen_subcommand_from login logout whoami connect completions help" -f -a "connect" -d 'Open a tunnel to a resource on 127.0.0.1 and keep it open until Ctrl-C (or until the `--exec` command exits)'
complete -c sluice -n "__fish_sluice_using_subcommand help; and not __fish_seen_subcommand_from login logout whoami connect completions help" -f -a "completions" -d 'Print shell completions'
complete -c sluice -n "__fish_sluice_using_subcommand help; and not __fish_seen_subcommand_from login logout whoami connect completions help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
