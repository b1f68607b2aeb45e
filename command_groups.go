package tokenauth

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/tokenauth/caddy-tokenauth/store"
)

func tokenGroupsCmd() *cobra.Command {
	// Bound to the flags: GetStringArray reads "--add ''" as no value.
	var add, remove []string
	c := &cobra.Command{
		Use:   "groups <username> [--add <group>]… [--remove <group>]…",
		Short: "Shows or changes the groups a user is in (auth_user_groups), for require group",
		Long: `
Prints the groups the user is in. --add puts the user in a group, creating
the group (auth_group) when it does not exist, as Django's
Group.objects.get_or_create does; --remove takes the user out of one (a
group the user is not in is no error). Both may be given several times;
the additions come first, and all the changes are one transaction.
`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			for _, g := range append(append([]string{}, add...), remove...) {
				if err := validGroupName(g); err != nil {
					return err
				}
			}
			return withStore(cmd, false, func(ctx context.Context, s store.Admin) error {
				gs, ok := s.(store.Groups)
				if !ok {
					return errors.New("this token store has no groups: it does not implement store.Groups")
				}
				created, groups, err := gs.EditGroups(ctx, args[0], add, remove)
				if errors.Is(err, store.ErrNoUser) {
					return fmt.Errorf("user %s does not exist", args[0])
				}
				if err != nil {
					return err
				}
				w := cmd.OutOrStdout()
				for _, g := range created {
					fmt.Fprintf(w, "Created group %s\n", g)
				}
				if len(groups) == 0 {
					fmt.Fprintf(w, "User %s is in no group\n", args[0])
				} else {
					fmt.Fprintf(w, "User %s is in groups: %s\n", args[0], strings.Join(groups, ", "))
				}
				return nil
			})
		},
	}
	c.Flags().StringArrayVar(&add, "add", nil, "put the user in this group, created if missing (repeatable)")
	c.Flags().StringArrayVar(&remove, "remove", nil, "take the user out of this group (repeatable)")
	return c
}

// validGroupName applies Django's rules for auth_group.name to a name the
// command writes or looks for: not blank, at most 150 characters, no NUL
// (which PostgreSQL cannot store), and no surrounding whitespace, which
// Django's forms strip (a name with it could be stored, but no admin form
// would ever name it).
func validGroupName(name string) error {
	switch {
	case name == "":
		return errors.New("invalid group name: it is blank")
	case !utf8.ValidString(name) || strings.ContainsRune(name, 0):
		return fmt.Errorf("invalid group name %q: not valid UTF-8 text without NUL", name)
	case strings.TrimFunc(name, unicode.IsSpace) != name:
		return fmt.Errorf("invalid group name %q: it starts or ends with whitespace, which Django's forms strip", name)
	case utf8.RuneCountInString(name) > groupNameMaxLength:
		return fmt.Errorf("invalid group name: Django allows at most %d characters (it has %d)", groupNameMaxLength, utf8.RuneCountInString(name))
	}
	return nil
}
