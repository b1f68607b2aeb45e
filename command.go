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
	"text/tabwriter"
	"unicode"
	"unicode/utf8"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
	"golang.org/x/term"
	"golang.org/x/text/unicode/norm"

	"github.com/tokenauth/caddy-tokenauth/password"
	"github.com/tokenauth/caddy-tokenauth/store"
	"github.com/tokenauth/caddy-tokenauth/store/postgres"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "token",
		Usage: "create|adduser|passwd|delete|list|groups|migrate …",
		Short: "Manages Django REST Framework tokens and users in a token_auth store",
		Long: `
Works on the same tables as Django (auth_user, authtoken_token, auth_group,
auth_user_groups), with Caddy running or not, like manage.py
drf_create_token.

The store is chosen by, in order:
  --store sqlite:<path>       a Django db.sqlite3 (or any file with its tables)
  --store postgres://…        a PostgreSQL database, by URL
  --store 'host=… dbname=…'   the same, by key=value settings
  --config <file> [--adapter] the token_auth store in that config
  (neither)                   the embedded store in Caddy's data directory
`,
		CobraFunc: func(cmd *cobra.Command) {
			cmd.PersistentFlags().String("store", "", "store to use: sqlite:<path>, postgres://… or 'host=… dbname=…'")
			cmd.PersistentFlags().StringP("config", "c", "", "config file whose token_auth store to use")
			cmd.PersistentFlags().StringP("adapter", "a", "", "name of the config adapter")
			cmd.AddCommand(tokenCreateCmd(), tokenAddUserCmd(), tokenPasswdCmd(),
				tokenDeleteCmd(), tokenListCmd(), tokenGroupsCmd(), tokenMigrateCmd())
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
		Use:   "create <username> [-r|--reset]",
		Short: "Prints the user's token, creating it if needed (drf_create_token)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			reset, _ := cmd.Flags().GetBool("reset")
			return withStore(cmd, false, func(ctx context.Context, s store.Admin) error {
				return printToken(ctx, cmd.OutOrStdout(), s, args[0], reset)
			})
		},
	}
	c.Flags().BoolP("reset", "r", false, "Reset existing User token and create a new one")
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
			return withStore(cmd, false, func(ctx context.Context, s store.Admin) error {
				u := store.NewUser{Username: args[0], Password: encoded, Active: !inactive, Staff: staff, Superuser: superuser}
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
		Short: "Deletes the user's token",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
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
		Short: "Lists users with tokens and when each token was created",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			showKeys, _ := cmd.Flags().GetBool("show-keys")
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

func tokenMigrateCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "migrate [--notify]",
		Short: "Creates Django's auth_user, authtoken_token and group and permission tables where missing",
		Long: `
Creates Django's auth_user and authtoken_token tables, and its tables of
groups and permissions (django_content_type, auth_permission, auth_group,
auth_group_permissions, auth_user_groups, auth_user_user_permissions),
where they are missing, and never changes tables that exist.

With --notify (PostgreSQL only), also installs where missing the trigger
function token_auth_notify and statement-level triggers on those tables
(on auth_user: of id, username, is_active, and, token_auth_notify_flags,
of is_staff and is_superuser) that NOTIFY token_auth of every change, so
that each Caddy sharing the database drops its cached lookups at once,
whoever made the change (Django included).
`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			notify, _ := cmd.Flags().GetBool("notify")
			set := map[string]any{"create": true}
			if notify {
				set["notify"] = true
			}
			return withStoreSet(cmd, set, func(ctx context.Context, s store.Admin) error {
				if err := s.Migrate(ctx); err != nil {
					return err
				}
				fmt.Fprintln(cmd.OutOrStdout(), migratedTables)
				if notify {
					fmt.Fprintln(cmd.OutOrStdout(), migratedTriggers)
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
		cfg, _, _, err := caddycmd.LoadConfig(configFile, adapter)
		if err != nil {
			return nil, err
		}
		return storeFromConfig(cfg)
	}
	return defaultStore, nil
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
