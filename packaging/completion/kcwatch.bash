# bash completion for kcwatch(8)
_kcwatch()
{
    local cur prev cmd
    cur=${COMP_WORDS[COMP_CWORD]}
    prev=${COMP_WORDS[COMP_CWORD-1]}
    cmd=${COMP_WORDS[1]}
    if [ "$COMP_CWORD" -eq 1 ]; then
        COMPREPLY=($(compgen -W "run check status test history version help --help" -- "$cur"))
        return
    fi
    case "$prev" in
        -c|--config)
            COMPREPLY=($(compgen -f -X '!*.y*ml' -- "$cur") $(compgen -d -- "$cur"))
            return ;;
        --since)
            COMPREPLY=($(compgen -W "1h 6h 24h 7d 30d" -- "$cur"))
            return ;;
        --log-level)
            COMPREPLY=($(compgen -W "debug info warn error" -- "$cur"))
            return ;;
        --log-format)
            COMPREPLY=($(compgen -W "logfmt json" -- "$cur"))
            return ;;
    esac
    case "$cmd" in
        run) COMPREPLY=($(compgen -W "-c --config --strict --log-level --log-format --help" -- "$cur")) ;;
        check)
            if [[ "$cur" == -* ]]; then
                COMPREPLY=($(compgen -W "-c --config --strict --log-level --log-format --help" -- "$cur"))
            else
                COMPREPLY=($(compgen -f -X '!*.y*ml' -- "$cur") $(compgen -d -- "$cur"))
            fi ;;
        status) COMPREPLY=($(compgen -W "-c --config --json --log-level --log-format --help" -- "$cur")) ;;
        history) COMPREPLY=($(compgen -W "-c --config --since --connector --json --log-level --log-format --help" -- "$cur")) ;;
        test)
            if [[ "$cur" == -* ]]; then
                COMPREPLY=($(compgen -W "--help" -- "$cur"))
            else
                COMPREPLY=($(compgen -f -X '!*.y*ml' -- "$cur") $(compgen -d -- "$cur"))
            fi ;;
        help) [ "$COMP_CWORD" -eq 2 ] && COMPREPLY=($(compgen -W "run check status test history version" -- "$cur")) ;;
        version) COMPREPLY=($(compgen -W "--json --help" -- "$cur")) ;;
    esac
}
complete -F _kcwatch kcwatch
