"""Shell completion scripts (bash, zsh, fish), made from the CLI's own argparse parser, so
they list every command and option the installed noodle2 has."""
from __future__ import annotations

import argparse


def _commands(parser: argparse.ArgumentParser) -> dict[str, list[str]]:
    """command -> its options ("" -> the options before a command)."""
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))  # noqa: SLF001
    out = {"": [o for a in parser._actions for o in a.option_strings]}  # noqa: SLF001
    for name, p in sub.choices.items():
        out[name] = [o for a in p._actions for o in a.option_strings if o.startswith("--") or o == "-h"]  # noqa: SLF001
    return out


def script(shell: str, parser: argparse.ArgumentParser) -> str:
    cmds = _commands(parser)
    names = " ".join(c for c in cmds if c)
    if shell == "fish":
        lines = ["# noodle2 completion for fish: noodle2 completion fish > ~/.config/fish/completions/noodle2.fish",
                 "complete -c noodle2 -f",
                 f"complete -c noodle2 -n __fish_use_subcommand -a '{names}'"]
        for c, opts in cmds.items():
            if c:
                lines += [f"complete -c noodle2 -n '__fish_seen_subcommand_from {c}' -l {o[2:]}"
                          for o in opts if o.startswith("--")]
                lines.append(f"complete -c noodle2 -n '__fish_seen_subcommand_from {c}' -F")
        return "\n".join(lines) + "\n"
    cases = "\n".join(f"    {c}) opts=\"{' '.join(o)}\" ;;" for c, o in cmds.items() if c)
    bash = f"""_noodle2() {{
  local cur=${{COMP_WORDS[COMP_CWORD]}} cmd="" i opts
  for ((i = 1; i < COMP_CWORD; i++)); do
    case ${{COMP_WORDS[i]}} in -*) ;; *) cmd=${{COMP_WORDS[i]}}; break ;; esac
  done
  if [[ -z $cmd ]]; then
    COMPREPLY=($(compgen -W "{names} {' '.join(cmds[''])}" -- "$cur"))
    return
  fi
  case $cmd in
{cases}
  esac
  if [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W "$opts" -- "$cur"))
  else
    COMPREPLY=($(compgen -f -- "$cur"))
  fi
}}
complete -o filenames -F _noodle2 noodle2
"""
    if shell == "zsh":
        return ("#compdef noodle2\n# noodle2 completion for zsh: noodle2 completion zsh > ~/.zfunc/_noodle2 "
                "(with fpath+=~/.zfunc; autoload -U compinit; compinit)\n"
                "autoload -U +X bashcompinit && bashcompinit\n" + bash)
    return "# noodle2 completion for bash: noodle2 completion bash > ~/.local/share/bash-completion/completions/noodle2\n" + bash
