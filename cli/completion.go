package cli

import (
	"fmt"
	"io"

	"github.com/containerd/errdefs"
	"github.com/urfave/cli/v2"
)

// Completion scripts ask the binary itself for candidates (urfave/cli's
// --generate-bash-completion), so they never go stale.
const bashCompletion = `# bash completion for skillbuild; load with: source <(skillbuild completion bash)
_skillbuild_complete() {
  local cur=${COMP_WORDS[COMP_CWORD]}
  local words=("${COMP_WORDS[@]:0:COMP_CWORD}")
  local out
  if [[ $cur == -* ]]; then
    out=$("${words[@]}" "$cur" --generate-bash-completion 2>/dev/null)
  else
    out=$("${words[@]}" --generate-bash-completion 2>/dev/null)
  fi
  COMPREPLY=($(compgen -W "$out" -- "$cur"))
}
complete -o default -F _skillbuild_complete skillbuild
`

const zshCompletion = `#compdef skillbuild
# zsh completion for skillbuild; load with: source <(skillbuild completion zsh)
_skillbuild_complete() {
  local -a cands
  local cur=${words[CURRENT]}
  if [[ $cur == -* ]]; then
    cands=("${(@f)$(${words[1,CURRENT-1]} $cur --generate-bash-completion 2>/dev/null)}")
  else
    cands=("${(@f)$(${words[1,CURRENT-1]} --generate-bash-completion 2>/dev/null)}")
  fi
  if [[ -n ${cands[1]} ]]; then
    _describe 'skillbuild' cands
  else
    _files
  fi
}
compdef _skillbuild_complete skillbuild
`

func completionCommand() *cli.Command {
	return &cli.Command{
		Name:      "completion",
		Usage:     "print a shell completion script (bash, zsh or fish)",
		ArgsUsage: "bash|zsh|fish",
		Description: "bash: source <(skillbuild completion bash)\n" +
			"zsh:  source <(skillbuild completion zsh)\n" +
			"fish: skillbuild completion fish | source",
		Action: func(c *cli.Context) error {
			return writeCompletion(c.App, c.App.Writer, c.Args().First())
		},
	}
}

func writeCompletion(app *cli.App, w io.Writer, shell string) error {
	switch shell {
	case "bash":
		_, err := io.WriteString(w, bashCompletion)
		return err
	case "zsh":
		_, err := io.WriteString(w, zshCompletion)
		return err
	case "fish":
		s, err := app.ToFishCompletion()
		if err != nil {
			return err
		}
		_, err = io.WriteString(w, s)
		return err
	}
	return fmt.Errorf("completion: shell %q is not supported; use bash, zsh or fish: %w", shell, errdefs.ErrInvalidArgument)
}
