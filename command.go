package tokenauth

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
	"golang.org/x/term"
	"golang.org/x/text/unicode/norm"

	"github.com/tokenauth/caddy-tokenauth/internal/knox"
	"github.com/tokenauth/caddy-tokenauth/password"
	"github.com/tokenauth/caddy-tokenauth/store"
	"github.com/tokenauth/caddy-tokenauth/store/postgres"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "token",
		Usage: "create|adduser|passwd|delete|list|groups|revoke|purge-expired|migrate …",
		Short: "Manages Django REST Framework or django-rest-knox tokens and users in a token_auth store",
		Long: `
Works on the same tables as Django (auth_user, auth_group, auth_user_groups,
and authtoken_token or knox's knox_authtoken), with Caddy running or not,
like manage.py
drf_create_token.

The store is chosen by, in order:
  --store sqlite:<path>       a Django db.sqlite3 (or any file with its tables)
  --store postgres://…        a PostgreSQL database, by URL
  --store 'host=… dbname=…'   the same, by key=value settings
  --config <file> [--adapter] the token_auth store in that config
  (neither)                   the embedded store in Caddy's data directory

The tokens are DRF's (authtoken_token, one per user) unless --tokens knox
says knox's (knox_authtoken: many per user, expiring, stored as a digest),
or the --config's token_auth handlers say tokens knox (their ttl and
prefix then apply to new keys).
`,
		CobraFunc: func(cmd *cobra.Command) {
			cmd.PersistentFlags().String("store", "", "store to use: sqlite:<path>, postgres://… or 'host=… dbname=…'")
			cmd.PersistentFlags().StringP("config", "c", "", "config file whose token_auth store to use")
			cmd.PersistentFlags().StringP("adapter", "a", "", "name of the config adapter")
			cmd.PersistentFlags().String("tokens", "", "drf (authtoken_token) or knox (knox_authtoken); default: the config's tokens, else drf")
			cmd.AddCommand(tokenCreateCmd(), tokenAddUserCmd(), tokenPasswdCmd(),
				tokenDeleteCmd(), tokenListCmd(), tokenGroupsCmd(), tokenRevokeCmd(), tokenPurgeExpiredCmd(), tokenMigrateCmd())
			for _, sub := range cmd.Commands() {
				run := sub.RunE
				sub.RunE = func(cmd *cobra.Command, args []string) error {
					return oneLine(run(cmd, args))
				}
			}
		},
	})
}

// oneLine returns err with its text on one line, for the command's
// "Error: …" line: pgx, for one, puts every address it tried on a line of
// its own, often the same line twice (sslmode=prefer tries TLS, then
// not). Lines are joined with a space after a colon, else with "; ", and
// a line that repeats the one before is dropped. err still unwraps to
// what it was.
func oneLine(err error) error {
	if err == nil || !strings.ContainsAny(err.Error(), "\r\n") {
		return err
	}
	var b strings.Builder
	prev := ""
	for line := range strings.FieldsFuncSeq(err.Error(), func(r rune) bool { return r == '\n' || r == '\r' }) {
		line = strings.TrimSpace(line)
		if line == "" || line == prev {
			continue
		}
		switch {
		case b.Len() == 0:
		case strings.HasSuffix(prev, ":"):
			b.WriteString(" ")
		default:
			b.WriteString("; ")
		}
		b.WriteString(line)
		prev = line
	}
	return &cliError{msg: b.String(), err: err}
}

// cliError is an error with the text the command prints in place of its own.
type cliError struct {
	msg string
	err error
}

func (e *cliError) Error() string { return e.msg }
func (e *cliError) Unwrap() error { return e.err }

func tokenCreateCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "create <username> [-r|--reset] [--expires <duration>|none]",
		Short: "Prints the user's token, creating it if needed (drf_create_token); with knox tokens, a new one",
		Long: `
With DRF tokens, prints the user's token, creating it if the user has
none, as manage.py drf_create_token does; --reset replaces it.

With knox tokens, makes a new token as knox's AuthToken.objects.create
does (a user holds many) and prints its key, which cannot be shown again:
knox_authtoken keeps only its digest. It expires after --expires (a
duration such as 10h or 30d, or none), by default the config's ttl, else
knox's 10h. limit_per_user is not applied: in knox it limits LoginView
only, not the tokens an administrator makes.
`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			reset, _ := cmd.Flags().GetBool("reset")
			tokens, err := tokensOf(cmd)
			if err != nil {
				return err
			}
			if !tokens.knox() {
				if cmd.Flags().Changed("expires") {
					return errors.New("--expires is for knox tokens (--tokens knox): DRF tokens do not expire (tokens drf { max_age } refuses old ones)")
				}
				return withStore(cmd, false, func(ctx context.Context, s store.Admin) error {
					return printToken(ctx, cmd.OutOrStdout(), s, args[0], reset)
				})
			}
			if reset {
				return errors.New("--reset is for DRF tokens: a knox user holds many (`caddy token delete <username>` deletes them all)")
			}
			ttl, err := knoxExpires(cmd, tokens)
			if err != nil {
				return err
			}
			return withKnox(cmd, nil, func(ctx context.Context, s knoxAdmin) error {
				return printKnoxToken(ctx, cmd.OutOrStdout(), s, args[0], tokens.Prefix, ttl)
			})
		},
	}
	c.Flags().BoolP("reset", "r", false, "Reset existing User token and create a new one")
	c.Flags().String("expires", "", "knox tokens: when the new token expires, a duration (10h, 30d) or none; default: the config's ttl, else 10h")
	return c
}

func tokenAddUserCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "adduser <username> [--password-stdin] [--inactive] [--staff] [--superuser]",
		Short: "Creates a Django user with a password, then prints its token",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			inactive, _ := cmd.Flags().GetBool("inactive")
			staff, _ := cmd.Flags().GetBool("staff")
			superuser, _ := cmd.Flags().GetBool("superuser")
			if err := validUsername(args[0]); err != nil {
				return err
			}
			encoded, err := newPassword(cmd)
			if err != nil {
				return err
			}
			tokens, err := tokensOf(cmd)
			if err != nil {
				return err
			}
			u := store.NewUser{Username: args[0], Password: encoded, Active: !inactive, Staff: staff, Superuser: superuser}
			if tokens.knox() {
				return withKnox(cmd, nil, func(ctx context.Context, s knoxAdmin) error {
					if err := s.AddUser(ctx, u); err != nil {
						return err
					}
					return printKnoxToken(ctx, cmd.OutOrStdout(), s, args[0], tokens.Prefix, tokens.ttl())
				})
			}
			return withStore(cmd, false, func(ctx context.Context, s store.Admin) error {
				if err := s.AddUser(ctx, u); err != nil {
					return err
				}
				return printToken(ctx, cmd.OutOrStdout(), s, args[0], false)
			})
		},
	}
	c.Flags().Bool("inactive", false, "create the user with is_active false")
	c.Flags().Bool("staff", false, "create the user with is_staff true (require staff, DRF's IsAdminUser)")
	c.Flags().Bool("superuser", false, "create the user with is_superuser true (every permission; not is_staff unless --staff)")
	passwordFlags(c)
	return c
}

func tokenPasswdCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "passwd <username> [--password-stdin]",
		Short: "Sets a user's password with Django's default hasher",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			encoded, err := newPassword(cmd)
			if err != nil {
				return err
			}
			return withStore(cmd, false, func(ctx context.Context, s store.Admin) error {
				if err := s.SetPassword(ctx, args[0], encoded); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "Password changed successfully for user '%s'\n", args[0])
				return nil
			})
		},
	}
	passwordFlags(c)
	return c
}

func tokenDeleteCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "delete <username>",
		Short: "Deletes the user's token (with knox tokens, all of them)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			tokens, err := tokensOf(cmd)
			if err != nil {
				return err
			}
			if tokens.knox() {
				return withKnox(cmd, nil, func(ctx context.Context, s knoxAdmin) error {
					u, err := s.UserByName(ctx, args[0])
					if err != nil {
						return err
					}
					n, err := s.KnoxDeleteUser(ctx, u.ID)
					if err != nil {
						return err
					}
					if n == 0 {
						fmt.Fprintf(cmd.OutOrStdout(), "User %s has no token\n", args[0])
						return nil
					}
					fmt.Fprintf(cmd.OutOrStdout(), "Deleted %s for user %s\n", plural(n, "token"), args[0])
					return nil
				})
			}
			return withStore(cmd, false, func(ctx context.Context, s store.Admin) error {
				deleted, err := s.DeleteUserToken(ctx, args[0])
				if err != nil {
					return err
				}
				if !deleted {
					fmt.Fprintf(cmd.OutOrStdout(), "User %s has no token\n", args[0])
					return nil
				}
				fmt.Fprintf(cmd.OutOrStdout(), "Deleted token for user %s\n", args[0])
				return nil
			})
		},
	}
}

func tokenListCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "list [--show-keys]",
		Short: "Lists users with tokens and when each token was created (knox tokens: token_key, user, created, expiry)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			showKeys, _ := cmd.Flags().GetBool("show-keys")
			tokens, err := tokensOf(cmd)
			if err != nil {
				return err
			}
			if tokens.knox() {
				if showKeys {
					return errors.New("--show-keys: knox keys are not stored (knox_authtoken keeps their digests); list shows each token's token_key, its first 15 characters")
				}
				return withKnox(cmd, nil, func(ctx context.Context, s knoxAdmin) error {
					return listKnox(ctx, cmd.OutOrStdout(), s)
				})
			}
			return withStore(cmd, false, func(ctx context.Context, s store.Admin) error {
				tokens, err := s.ListTokens(ctx)
				if err != nil {
					return err
				}
				tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				if showKeys {
					fmt.Fprintln(tw, "USERNAME\tCREATED\tKEY")
				} else {
					fmt.Fprintln(tw, "USERNAME\tCREATED")
				}
				for _, t := range tokens {
					created := t.Created.UTC().Format("2006-01-02 15:04:05Z")
					if showKeys {
						fmt.Fprintf(tw, "%s\t%s\t%s\n", t.Username, created, t.Key)
					} else {
						fmt.Fprintf(tw, "%s\t%s\n", t.Username, created)
					}
				}
				return tw.Flush()
			})
		},
	}
	c.Flags().Bool("show-keys", false, "also print the keys")
	return c
}

func tokenRevokeCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "revoke <token_key>|<key>",
		Short: "Deletes the knox tokens of a token_key (as list shows it), or the token of a whole key",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := needKnox(cmd, "revoke"); err != nil {
				return err
			}
			arg := args[0]
			return withKnox(cmd, nil, func(ctx context.Context, s knoxAdmin) error {
				w := cmd.OutOrStdout()
				if knox.Plausible(arg) {
					// A whole key: its one token, by digest.
					deleted, err := s.KnoxDelete(ctx, knox.Digest(arg))
					if err != nil {
						return err
					}
					if !deleted {
						fmt.Fprintf(w, "No token has the key %s…\n", knox.TokenKey(arg))
						return nil
					}
					fmt.Fprintf(w, "Revoked the token of the key %s…\n", knox.TokenKey(arg))
					return nil
				}
				n, err := s.KnoxDeleteByTokenKey(ctx, arg)
				if err != nil {
					return err
				}
				if n == 0 {
					fmt.Fprintf(w, "No token has the token_key %s\n", arg)
					return nil
				}
				fmt.Fprintf(w, "Revoked %s with the token_key %s\n", plural(n, "token"), arg)
				return nil
			})
		},
	}
}

func tokenPurgeExpiredCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "purge-expired",
		Short: "Deletes every expired knox token",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := needKnox(cmd, "purge-expired"); err != nil {
				return err
			}
			return withKnox(cmd, nil, func(ctx context.Context, s knoxAdmin) error {
				n, err := s.KnoxPurgeExpired(ctx, time.Now())
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "Deleted %s\n", plural(n, "expired token"))
				return nil
			})
		},
	}
}

func tokenMigrateCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "migrate [--notify]",
		Short: "Creates Django's auth_user, authtoken_token and group and permission tables where missing (and knox_authtoken with knox tokens)",
		Long: `
Creates Django's auth_user and authtoken_token tables, and its tables of
groups and permissions (django_content_type, auth_permission, auth_group,
auth_group_permissions, auth_user_groups, auth_user_user_permissions),
where they are missing, and never changes tables that exist. With knox
tokens, also knox's knox_authtoken, with the DDL knox's migrations make.

With --notify (PostgreSQL only), also installs where missing the trigger
function token_auth_notify and statement-level triggers on those tables
(on auth_user: of id, username, is_active, and, token_auth_notify_flags,
of is_staff and is_superuser) that NOTIFY token_auth of every change, so
that each Caddy sharing the database drops its cached lookups at once,
whoever made the change (Django included); with knox tokens, on
knox_authtoken too (every change but an insert and an update that only
moves expiry later).
`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			notify, _ := cmd.Flags().GetBool("notify")
			tokens, err := tokensOf(cmd)
			if err != nil {
				return err
			}
			set := map[string]any{"create": true}
			if notify {
				set["notify"] = true
			}
			w := cmd.OutOrStdout()
			if tokens.knox() {
				return withKnox(cmd, set, func(ctx context.Context, s knoxAdmin) error {
					if err := s.Migrate(ctx); err != nil {
						return err
					}
					if err := s.MigrateKnox(ctx); err != nil {
						return err
					}
					fmt.Fprintln(w, migratedKnoxTables)
					if notify {
						fmt.Fprintln(w, migratedKnoxTriggers)
					}
					return nil
				})
			}
			return withStoreSet(cmd, set, func(ctx context.Context, s store.Admin) error {
				if err := s.Migrate(ctx); err != nil {
					return err
				}
				fmt.Fprintln(w, migratedTables)
				if notify {
					fmt.Fprintln(w, migratedTriggers)
				}
				return nil
			})
		},
	}
	c.Flags().Bool("notify", false, "also install the triggers that push changes to every Caddy (PostgreSQL only)")
	return c
}

// What `caddy token migrate` says it made.
const (
	migratedTables = "Tables auth_user, authtoken_token, django_content_type, auth_permission, auth_group, " +
		"auth_group_permissions, auth_user_groups and auth_user_user_permissions are in place"
	migratedTriggers = "Triggers token_auth_notify on those tables, and token_auth_notify_flags on auth_user, are in place"

	migratedKnoxTables = "Tables auth_user, authtoken_token, knox_authtoken, django_content_type, auth_permission, auth_group, " +
		"auth_group_permissions, auth_user_groups and auth_user_user_permissions are in place"
	migratedKnoxTriggers = "Triggers token_auth_notify on those tables, token_auth_notify_flags on auth_user, " +
		"and token_auth_notify_update on knox_authtoken, are in place"
)

// printToken prints drf_create_token's line, or its error.
func printToken(ctx context.Context, w io.Writer, s store.Admin, username string, reset bool) error {
	key, err := s.TokenFor(ctx, username, reset)
	if errors.Is(err, store.ErrNoUser) {
		return fmt.Errorf("Cannot create the Token: user %s does not exist", username) //lint:ignore ST1005 DRF's message, verbatim
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "Generated token %s for user %s\n", key, username)
	return nil
}

// printKnoxToken makes a knox token for the user named username, as
// knox's AuthToken.objects.create does, and prints its key, the one time
// it can be: the store is given its token_key and digest only. ttl 0 is
// a token that never expires.
func printKnoxToken(ctx context.Context, w io.Writer, s knoxAdmin, username, prefix string, ttl time.Duration) error {
	u, err := s.UserByName(ctx, username)
	if errors.Is(err, store.ErrNoUser) {
		return fmt.Errorf("Cannot create the Token: user %s does not exist", username) //lint:ignore ST1005 DRF's message, verbatim
	}
	if err != nil {
		return err
	}
	key := knox.Generate(prefix)
	created := time.Now().UTC().Truncate(time.Microsecond)
	var expiry time.Time
	if ttl > 0 {
		expiry = created.Add(ttl)
	}
	row := store.KnoxNew{Digest: knox.Digest(key), TokenKey: knox.TokenKey(key), UserID: u.ID, Created: created, Expiry: expiry}
	if err := s.KnoxCreate(ctx, row, 0); err != nil {
		return err
	}
	fmt.Fprintf(w, "Generated token %s for user %s\n", key, username)
	if expiry.IsZero() {
		fmt.Fprintln(w, "It never expires.")
	} else {
		fmt.Fprintf(w, "It expires %s.\n", expiry.Format(listTime))
	}
	fmt.Fprintln(w, "It cannot be shown again: knox_authtoken keeps only its digest.")
	return nil
}

// listTime is how list shows a time.
const listTime = "2006-01-02 15:04:05Z"

// listKnox prints every knox token: its token_key, user, created and
// expiry.
func listKnox(ctx context.Context, w io.Writer, s store.KnoxAdmin) error {
	tokens, err := s.KnoxList(ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TOKEN_KEY\tUSERNAME\tCREATED\tEXPIRES")
	for _, t := range tokens {
		expires := "never"
		if !t.Expiry.IsZero() {
			expires = t.Expiry.UTC().Format(listTime)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", t.TokenKey, t.Username, t.Created.UTC().Format(listTime), expires)
	}
	return tw.Flush()
}

// plural is "1 token", "2 tokens".
func plural(n int64, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.FormatInt(n, 10) + " " + noun + "s"
}

// knoxExpires is the lifetime of a new knox token, from --expires or the
// config's tokens; 0 for none.
func knoxExpires(cmd *cobra.Command, tokens *Tokens) (time.Duration, error) {
	v, _ := cmd.Flags().GetString("expires")
	switch v = strings.TrimSpace(v); {
	case !cmd.Flags().Changed("expires"):
		return tokens.ttl(), nil
	case v == "none":
		return 0, nil
	}
	d, err := caddy.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("--expires %q: want a positive duration (10h, 30d) or none", v)
	}
	return d, nil
}

// needKnox refuses a command that only knox tokens have.
func needKnox(cmd *cobra.Command, name string) error {
	tokens, err := tokensOf(cmd)
	if err != nil {
		return err
	}
	if !tokens.knox() {
		return fmt.Errorf("%s is for knox tokens (--tokens knox, or tokens knox in the --config): a DRF user's one token is deleted with `caddy token delete <username>`", name)
	}
	return nil
}

// usernameMaxLength is auth_user.username's max_length in Django.
const usernameMaxLength = 150

// validUsername applies the rules of Django's auth_user.username to a new
// user's name, so that adduser makes only users Django could have made:
// not blank, at most 150 characters, and UnicodeUsernameValidator's
// r'^[\w.@+-]+\Z'. Python's \w, on str, is str.isalnum() or "_": letters
// (Unicode L*), numbers (N*), and no marks and no other connector
// punctuation; unicode.IsLetter and unicode.IsNumber give exactly that for
// every character of Unicode 14 (Python 3.11's tables), and differ only on
// characters a later Unicode version added. The name must also be in NFKC
// form, to which Django's forms and create_user normalize a username
// (AbstractBaseUser.normalize_username): a name that is not could be
// stored, but Django's login form would never find it. Nothing is
// stripped or normalized here: a refused name says why, and which name
// would do.
func validUsername(name string) error {
	if name == "" {
		return errors.New("invalid username: it is blank, and Django requires one")
	}
	if nfkc := norm.NFKC.String(name); nfkc != name && utf8.ValidString(name) {
		return fmt.Errorf("invalid username %q: it is not in Unicode NFKC form, to which Django normalizes usernames (it would be %q)", name, nfkc)
	}
	for _, r := range name {
		ok := unicode.IsLetter(r) || unicode.IsNumber(r) || strings.ContainsRune("_.@+-", r)
		if !ok || r == utf8.RuneError {
			return fmt.Errorf("invalid username %q: it may contain only letters, numbers, and @/./+/-/_ characters (Django's UnicodeUsernameValidator)", name)
		}
	}
	if n := utf8.RuneCountInString(name); n > usernameMaxLength {
		return fmt.Errorf("invalid username: Django allows at most %d characters (it has %d)", usernameMaxLength, n)
	}
	return nil
}

// The PBKDF2 iterations the commands accept. The most is what a login
// accepts (password/limits.go, pbkdf2Iterations: Check refuses a stored
// value with more), so that every password the command sets logs in. The
// least is Django 2.0's default (2017), the lowest of the six-figure
// defaults Django has had: no Django needs fewer to read a hash (each
// value carries its own count, and Django rehashes at its own default on
// the next login), and fewer are mistakes (1, 1000) or weaker than what
// any Django since 2.0 writes.
const (
	minIterations = 100_000
	maxIterations = 10_000_000
)

// passwordFlags adds the flags of the commands that set a password.
func passwordFlags(c *cobra.Command) {
	c.Flags().Bool("password-stdin", false, "read the password from the first line of standard input")
	c.Flags().Int("iterations", password.DefaultIterations,
		"PBKDF2 iterations for the password hash ("+strconv.Itoa(minIterations)+" to "+strconv.Itoa(maxIterations)+")")
}

// newPassword reads a password as the flags say and encodes it with
// Django's default hasher.
func newPassword(cmd *cobra.Command) (string, error) {
	fromStdin, _ := cmd.Flags().GetBool("password-stdin")
	iterations, _ := cmd.Flags().GetInt("iterations")
	if iterations < minIterations || iterations > maxIterations {
		return "", fmt.Errorf("--iterations: want %d to %d (the most a login accepts), got %d", minIterations, maxIterations, iterations)
	}
	raw, err := readPassword(cmd, fromStdin)
	if err != nil {
		return "", err
	}
	return password.Make(raw, iterations)
}

// readPassword reads a password from the first line of stdin, or prompts
// twice on a terminal without echo.
func readPassword(cmd *cobra.Command, fromStdin bool) (string, error) {
	in := cmd.InOrStdin()
	if !fromStdin {
		f, ok := in.(*os.File)
		if !ok || !term.IsTerminal(int(f.Fd())) {
			return "", errors.New("no terminal to prompt for a password: use --password-stdin")
		}
		fmt.Fprint(cmd.ErrOrStderr(), "Password: ")
		p1, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(cmd.ErrOrStderr())
		if err != nil {
			return "", err
		}
		fmt.Fprint(cmd.ErrOrStderr(), "Password (again): ")
		p2, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(cmd.ErrOrStderr())
		if err != nil {
			return "", err
		}
		if string(p1) != string(p2) {
			return "", errors.New("passwords didn't match")
		}
		if len(p1) == 0 {
			return "", errors.New("blank passwords aren't allowed")
		}
		return string(p1), nil
	}
	line, err := bufio.NewReader(in).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("reading password: %w", err)
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", errors.New("blank passwords aren't allowed")
	}
	return line, nil
}

// knoxAdmin is what the command needs of a store for knox tokens.
type knoxAdmin interface {
	store.Admin
	store.KnoxAdmin
}

// withKnox is withStoreSet for knox tokens.
func withKnox(cmd *cobra.Command, set map[string]any, f func(context.Context, knoxAdmin) error) error {
	return withStoreSet(cmd, set, func(ctx context.Context, s store.Admin) error {
		k, ok := s.(knoxAdmin)
		if !ok {
			return fmt.Errorf("token store %T cannot serve knox tokens: it does not implement store.KnoxAdmin", s)
		}
		return f(ctx, k)
	})
}

// storeHolder loads a store module the way the handler does.
type storeHolder struct {
	StoreRaw json.RawMessage `json:"store,omitempty" caddy:"namespace=http.token_auth.stores inline_key=kind"`
}

// withStore opens the store the flags name, runs f, and closes it. With
// create, missing tables are created (the store's create option).
func withStore(cmd *cobra.Command, create bool, f func(context.Context, store.Admin) error) error {
	var set map[string]any
	if create {
		set = map[string]any{"create": true}
	}
	return withStoreSet(cmd, set, f)
}

// withStoreSet is withStore with the store's options in set overridden.
// Only a postgres store has the notify option.
func withStoreSet(cmd *cobra.Command, set map[string]any, f func(context.Context, store.Admin) error) error {
	raw, err := storeConfig(cmd)
	if err != nil {
		return err
	}
	if len(set) > 0 {
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			return err
		}
		if _, ok := set["notify"]; ok && m["kind"] != "postgres" {
			return fmt.Errorf("--notify: only a postgres store has triggers (a %v store notices changes by itself)", m["kind"])
		}
		for k, v := range set {
			m[k] = v
		}
		raw, _ = json.Marshal(m)
	}
	base, err := caddy.ProvisionContext(cliConfig())
	if err != nil {
		return err
	}
	ctx, cancel := caddy.NewContext(base)
	defer cancel()
	holder := storeHolder{StoreRaw: raw}
	mod, err := ctx.LoadModule(&holder, "StoreRaw")
	if err != nil {
		return err
	}
	s, ok := mod.(store.Admin)
	if !ok {
		return fmt.Errorf("token store %s cannot serve the token command: it does not implement store.Admin", caddy.GetModuleName(mod))
	}
	return f(ctx, s)
}

// cliConfig is the config of the context a command loads its store in,
// for its logging: without a config, caddy.Context.Logger gives modules
// zap's development logger, which prints a stack trace with every warning.
// The default log takes errors only. A store warns about what a server
// rides out ("unreachable; starting anyway"), and a command does not ride
// it out: the store's next call fails, and that error is the command's
// one line.
func cliConfig() *caddy.Config {
	return &caddy.Config{Logging: &caddy.Logging{Logs: map[string]*caddy.CustomLog{
		caddy.DefaultLoggerName: {BaseLog: caddy.BaseLog{Level: "ERROR"}},
	}}}
}

// storeConfig returns the JSON of the store the flags name.
func storeConfig(cmd *cobra.Command) (json.RawMessage, error) {
	spec, _ := cmd.Flags().GetString("store")
	configFile, _ := cmd.Flags().GetString("config")
	adapter, _ := cmd.Flags().GetString("adapter")
	// An empty value is a mistake (an unset variable in --store
	// "$DATABASE_URL"), never a request for the embedded store.
	for _, name := range []string{"store", "config"} {
		if f := cmd.Flags().Lookup(name); f != nil && f.Changed && strings.TrimSpace(f.Value.String()) == "" {
			return nil, fmt.Errorf("--%s is empty", name)
		}
	}
	switch {
	case spec != "" && configFile != "":
		return nil, errors.New("use either --store or --config, not both")
	case spec != "":
		return parseStoreSpec(spec)
	case configFile != "":
		cfg, err := loadConfig(configFile, adapter)
		if err != nil {
			return nil, err
		}
		return storeFromConfig(cfg)
	}
	return defaultStore, nil
}

// loadedConfigs are the configs loaded by this process, by file and
// adapter: the store and the tokens are read from one load (which logs
// "using config from file").
var loadedConfigs sync.Map

// loadConfig is caddycmd.LoadConfig, once per file and adapter.
func loadConfig(file, adapter string) ([]byte, error) {
	key := file + "\x00" + adapter
	if cfg, ok := loadedConfigs.Load(key); ok {
		return cfg.([]byte), nil
	}
	cfg, _, _, err := caddycmd.LoadConfig(file, adapter)
	if err != nil {
		return nil, err
	}
	loadedConfigs.Store(key, cfg)
	return cfg, nil
}

// tokensOf returns the tokens the command works on: --tokens, and the
// settings of that kind in the --config; or the kind the config's
// token_auth handlers have; else DRF's. nil is DRF's defaults.
func tokensOf(cmd *cobra.Command) (*Tokens, error) {
	kind, _ := cmd.Flags().GetString("tokens")
	if f := cmd.Flags().Lookup("tokens"); f != nil && f.Changed && kind != tokensDRF && kind != tokensKnox {
		return nil, fmt.Errorf("--tokens %q: want drf or knox", kind)
	}
	configFile, _ := cmd.Flags().GetString("config")
	adapter, _ := cmd.Flags().GetString("adapter")
	var t *Tokens
	if configFile != "" && strings.TrimSpace(configFile) != "" {
		cfg, err := loadConfig(configFile, adapter)
		if err != nil {
			return nil, err
		}
		if t, err = tokensFromConfig(cfg, kind); err != nil {
			return nil, err
		}
	} else if kind != "" {
		t = &Tokens{Kind: kind}
	}
	if t != nil {
		if err := t.validate(); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// tokensFromConfig finds the token_auth handlers in a Caddy JSON config
// and returns their tokens of kind ("" for whichever kind they all have).
// Of knox tokens the command uses ttl and prefix, which must then be the
// same in every handler; a kind no handler has gets its defaults.
func tokensFromConfig(cfg []byte, kind string) (*Tokens, error) {
	var root any
	if err := json.Unmarshal(cfg, &root); err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	var found []*Tokens
	var walk func(any)
	var bad error
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if v["handler"] == "token_auth" {
				t := &Tokens{Kind: tokensDRF}
				if raw, ok := v["tokens"]; ok {
					b, _ := json.Marshal(raw)
					if err := json.Unmarshal(b, t); err != nil && bad == nil {
						bad = fmt.Errorf("reading the config's tokens: %w", err)
					}
					if t.Kind == "" {
						t.Kind = tokensDRF
					}
				}
				found = append(found, t)
			}
			for _, child := range v {
				walk(child)
			}
		case []any:
			for _, child := range v {
				walk(child)
			}
		}
	}
	walk(root)
	if bad != nil {
		return nil, bad
	}
	if len(found) == 0 {
		return nil, errors.New("the config has no token_auth handler")
	}
	if kind == "" {
		kind = found[0].Kind
		for _, t := range found[1:] {
			if t.Kind != kind {
				return nil, errors.New("the config's token_auth handlers use both drf and knox tokens: name one with --tokens")
			}
		}
	}
	var pick *Tokens
	for _, t := range found {
		if t.Kind != kind {
			continue
		}
		if pick != nil && (t.ttl() != pick.ttl() || t.Prefix != pick.Prefix) && kind == tokensKnox {
			return nil, errors.New("the config's token_auth handlers make knox tokens with different ttl or prefix")
		}
		if pick == nil {
			pick = t
		}
	}
	if pick == nil {
		pick = &Tokens{Kind: kind}
	}
	return pick, nil
}

// keyValueDSN is how a connection string in key=value form starts: a
// keyword, as libpq's are, and "=".
var keyValueDSN = regexp.MustCompile(`^\s*[A-Za-z_]+\s*=`)

// urlScheme is a URL's scheme and "://".
var urlScheme = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*://`)

// parseStoreSpec turns --store into a store's JSON. A postgres DSN is
// either form pgx reads: a postgres:// or postgresql:// URL, or key=value
// settings (host=… dbname=…).
func parseStoreSpec(spec string) (json.RawMessage, error) {
	var v map[string]string
	switch {
	case strings.HasPrefix(spec, "sqlite:"):
		path := strings.TrimPrefix(spec, "sqlite:")
		if path == "" {
			return nil, errors.New("--store: the path of sqlite:<path> is empty")
		}
		v = map[string]string{"kind": "sqlite", "path": path}
	case strings.HasPrefix(spec, "postgres://"), strings.HasPrefix(spec, "postgresql://"), keyValueDSN.MatchString(spec):
		v = map[string]string{"kind": "postgres", "dsn": spec}
	default:
		return nil, fmt.Errorf("--store: want sqlite:<path> or postgres://… (or key=value settings, 'host=… dbname=…'), got %q", redactSpec(spec))
	}
	return json.Marshal(v)
}

// redactSpec hides what could be a password in a spec parseStoreSpec did
// not take, with the postgres store's own redaction: a URL of any scheme
// as a postgres URL, anything else as key=value settings. Beyond that,
// what is left of an @ in a spec that is not a URL could be user info
// (postgres:/user:pw@host), and is dropped.
func redactSpec(spec string) string {
	if scheme := urlScheme.FindString(spec); scheme != "" {
		return scheme + strings.TrimPrefix(postgres.RedactDSN("postgres://"+spec[len(scheme):]), "postgres://")
	}
	spec = postgres.RedactDSN(spec)
	if i := strings.LastIndex(spec, "@"); i >= 0 {
		return "…" + spec[i:]
	}
	return spec
}

// storeFromConfig finds the token_auth handlers in a Caddy JSON config and
// returns their store, which must be the same for all of them.
func storeFromConfig(cfg []byte) (json.RawMessage, error) {
	var root any
	if err := json.Unmarshal(cfg, &root); err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	var found []json.RawMessage
	var walk func(any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if v["handler"] == "token_auth" {
				s := defaultStore
				if raw, ok := v["store"]; ok {
					s, _ = json.Marshal(raw)
				}
				found = append(found, s)
			}
			for _, child := range v {
				walk(child)
			}
		case []any:
			for _, child := range v {
				walk(child)
			}
		}
	}
	walk(root)
	if len(found) == 0 {
		return nil, errors.New("the config has no token_auth handler")
	}
	for _, s := range found[1:] {
		if string(s) != string(found[0]) {
			return nil, errors.New("the config's token_auth handlers use different stores: name one with --store")
		}
	}
	return found[0], nil
}
