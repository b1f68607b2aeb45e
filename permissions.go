package tokenauth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"go.uber.org/zap"

	"github.com/tokenauth/caddy-tokenauth/internal/drf"
	"github.com/tokenauth/caddy-tokenauth/store"
)

// Requirement is one `require` line, one of DRF's permission classes: it
// holds when any of its alternatives does. A handler's requirements must
// all hold, as every class of a view's permission_classes must.
//
// An authenticated user who fails one gets 403 {"detail":"You do not have
// permission to perform this action."}; a request without credentials
// gets DRF's 401 "Authentication credentials were not provided." (403
// under no_challenge). The handler's logout endpoint is not subject to
// them, as knox's LogoutView is only IsAuthenticated; nor is its login
// endpoint.
type Requirement struct {
	// Staff holds for a user with auth_user.is_staff, as DRF's
	// IsAdminUser (a superuser without is_staff fails it).
	Staff bool `json:"staff,omitempty"`

	// Superuser holds for a user with auth_user.is_superuser.
	Superuser bool `json:"superuser,omitempty"`

	// Groups holds for a member (auth_user_groups) of any group of these
	// names (auth_group.name, exactly). Superusers are members of their
	// groups only.
	Groups []string `json:"groups,omitempty"`

	// Perms holds for a user who has any of these permissions, named as
	// Django's user.has_perm takes them, "<app_label>.<codename>": an
	// active superuser has every permission; anyone else those granted to
	// it (auth_user_user_permissions) or to a group it is in
	// (auth_group_permissions), by django_content_type.app_label and
	// auth_permission.codename.
	Perms []string `json:"perms,omitempty"`
}

// Limits of the requirements.
const (
	// maxNames is how many distinct group and permission names the
	// handlers of a process can require at once: each has a bit of a
	// cached identity's permissions (userPerms), beside three of its own.
	maxNames = 61
	// groupNameMaxLength is auth_group.name's max_length in Django.
	groupNameMaxLength = 150
)

// validatePermissions holds the rules of require and read_only.
func (h *TokenAuth) validatePermissions() error {
	switch {
	case h.ReadOnly && !h.Optional:
		return errors.New("read_only needs optional (DRF's IsAuthenticatedOrReadOnly: optional read_only)")
	case h.Optional && len(h.Require) > 0:
		return errors.New("optional with require: a request without credentials never meets a requirement, " +
			"as with AllowAny and IsAdminUser together in DRF; drop optional")
	}
	names := make(map[nameKey]bool)
	for i := range h.Require {
		q := &h.Require[i]
		if !q.Staff && !q.Superuser && len(q.Groups) == 0 && len(q.Perms) == 0 {
			return errors.New("require: a requirement needs staff, superuser, groups or perms")
		}
		for _, g := range q.Groups {
			if g == "" || utf8.RuneCountInString(g) > groupNameMaxLength {
				return fmt.Errorf("require group %q: want a group name of 1 to %d characters (auth_group.name)", g, groupNameMaxLength)
			}
			names[nameKey{name: g}] = true
		}
		for _, p := range q.Perms {
			app, codename, ok := strings.Cut(p, ".")
			if !ok || app == "" || codename == "" {
				return fmt.Errorf("require perm %q: want <app_label>.<codename>, as user.has_perm takes it", p)
			}
			names[nameKey{perm: true, name: p}] = true
		}
	}
	if len(names) > maxNames {
		return fmt.Errorf("require: %d distinct group and permission names, at most %d", len(names), maxNames)
	}
	return nil
}

// unmarshalRequire reads one `require` line:
//
//	require [staff] [superuser] [group <name>…] [perm <app_label.codename>…]
//
// Its words are alternatives. After group or perm, every word is a name
// of that kind until the word group or perm; staff and superuser come
// before them.
func (h *TokenAuth) unmarshalRequire(d *caddyfile.Dispenser) error {
	var q Requirement
	kind, names := "", 0
	words := 0
	for d.NextArg() {
		w := d.Val()
		words++
		switch {
		case w == "group" || w == "perm":
			if kind != "" && names == 0 {
				return d.Errf("require %s: want at least one name", kind)
			}
			kind, names = w, 0
			continue
		case kind == "group":
			q.Groups = append(q.Groups, w)
		case kind == "perm":
			q.Perms = append(q.Perms, w)
		case w == "staff":
			q.Staff = true
		case w == "superuser":
			q.Superuser = true
		default:
			return d.Errf("require %q: want staff, superuser, group <name>… or perm <app_label.codename>…", w)
		}
		names++
	}
	switch {
	case words == 0:
		return d.ArgErr()
	case kind != "" && names == 0:
		return d.Errf("require %s: want at least one name", kind)
	}
	h.Require = append(h.Require, q)
	return nil
}

// unmarshalOptional reads `optional [read_only]`.
func (h *TokenAuth) unmarshalOptional(d *caddyfile.Dispenser) error {
	h.Optional = true
	if !d.NextArg() {
		return nil
	}
	if d.Val() != "read_only" {
		return d.Errf("optional %q: want nothing, or read_only", d.Val())
	}
	h.ReadOnly = true
	return noArgs(d)
}

// nameKey is a required name: a group's, or a permission's.
type nameKey struct {
	perm bool
	name string
}

// names gives each name some live handler requires a bit of a cached
// identity's permissions. A name keeps its bit while any handler requires
// it, so that the bits of an identity cached for one handler mean the same
// to every other; a bit freed is given to another name only when a
// handler that requires it starts, and that handler's start flushes its
// cache (provisionCache), so no identity it reads was cached under the
// bit's old name.
var names nameTable

type nameTable struct {
	mu    sync.Mutex
	refs  [maxNames]int
	keys  [maxNames]nameKey
	index atomic.Pointer[map[nameKey]uint8] // read by loads, replaced whole
}

// acquire gives each key a bit, or keeps the one it has, and counts the
// caller as requiring it.
func (t *nameTable) acquire(keys []nameKey) (map[nameKey]uint8, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	idx := make(map[nameKey]uint8, maxNames)
	if cur := t.index.Load(); cur != nil {
		for k, v := range *cur {
			idx[k] = v
		}
	}
	got := make(map[nameKey]uint8, len(keys))
	for _, k := range keys {
		bit, ok := idx[k]
		if !ok {
			free := -1
			for i := range t.refs {
				if t.refs[i] == 0 {
					free = i
					break
				}
			}
			if free < 0 {
				t.releaseLocked(keys[:len(got)], idx)
				return nil, fmt.Errorf("require: the handlers of this process require more than %d distinct group and permission names", maxNames)
			}
			bit = uint8(free)
			t.keys[bit] = k
			idx[k] = bit
		}
		t.refs[bit]++
		got[k] = bit
	}
	t.index.Store(&idx)
	return got, nil
}

// release counts the caller as no longer requiring keys.
func (t *nameTable) release(keys []nameKey) {
	t.mu.Lock()
	defer t.mu.Unlock()
	idx := make(map[nameKey]uint8)
	if cur := t.index.Load(); cur != nil {
		for k, v := range *cur {
			idx[k] = v
		}
	}
	t.releaseLocked(keys, idx)
	t.index.Store(&idx)
}

func (t *nameTable) releaseLocked(keys []nameKey, idx map[nameKey]uint8) {
	for _, k := range keys {
		bit, ok := idx[k]
		if !ok {
			continue
		}
		if t.refs[bit]--; t.refs[bit] == 0 {
			delete(idx, k)
			t.keys[bit] = nameKey{}
		}
	}
}

// bits are the bits of the names among those given, as the table stands.
func (t *nameTable) bits(groups, perms []string) userPerms {
	idx := t.index.Load()
	if idx == nil {
		return 0
	}
	var b userPerms
	for _, g := range groups {
		if bit, ok := (*idx)[nameKey{name: g}]; ok {
			b |= 1 << bit
		}
	}
	for _, p := range perms {
		if bit, ok := (*idx)[nameKey{perm: true, name: p}]; ok {
			b |= 1 << bit
		}
	}
	return b
}

// storeNeeds is what the handlers using one store need loaded with an
// identity, whichever of them loads it: the permissions, where any of
// them has a requirement, and the groups' names, where any requires a
// group ({http.auth.user.groups}).
type storeNeeds struct {
	handlers int // under needsMu
	perms    atomic.Int32
	groups   atomic.Int32
}

var (
	needsMu sync.Mutex
	needs   = make(map[string]*storeNeeds) // by the store's JSON
)

// handlerPerms is a handler's part in the requirements: its own,
// compiled, and what it counts in its store's needs.
type handlerPerms struct {
	reqs      []requirement // nil: none
	keys      []nameKey     // acquired from names
	needs     *storeNeeds
	storeKey  string
	perms     bool // counted in needs.perms
	groups    bool // counted in needs.groups
	permStore store.Permissions
}

// requirement is a Requirement with its names as bits.
type requirement struct {
	staff, superuser bool
	groups, perms    userPerms
}

// holds tells whether the user of p meets the requirement: a superuser
// has every permission, and only its groups.
func (q *requirement) holds(p userPerms) bool {
	return q.staff && p.staff() || q.superuser && p.superuser() ||
		p&q.groups != 0 || q.perms != 0 && (p.superuser() || p&q.perms != 0)
}

// provisionPermissions compiles the requirements and counts the handler
// in its store's needs. It runs before provisionCache, whose flush drops
// whatever was cached under what it changes.
func (h *TokenAuth) provisionPermissions(storeKey string) error {
	hp := &handlerPerms{storeKey: storeKey}
	h.perms = hp
	needsMu.Lock()
	hp.needs = needs[storeKey]
	if hp.needs == nil {
		hp.needs = new(storeNeeds)
		needs[storeKey] = hp.needs
	}
	hp.needs.handlers++
	needsMu.Unlock()
	hp.permStore, _ = h.store.(store.Permissions)
	if len(h.Require) == 0 {
		return nil
	}
	if hp.permStore == nil {
		return fmt.Errorf("token store %s cannot serve require: it does not implement store.Permissions", caddy.GetModuleName(h.store))
	}
	seen := make(map[nameKey]bool)
	for _, q := range h.Require {
		for _, g := range q.Groups {
			seen[nameKey{name: g}] = true
		}
		for _, p := range q.Perms {
			seen[nameKey{perm: true, name: p}] = true
		}
	}
	for k := range seen {
		hp.keys = append(hp.keys, k)
	}
	bits, err := names.acquire(hp.keys)
	if err != nil {
		hp.keys = nil
		return err
	}
	for _, q := range h.Require {
		c := requirement{staff: q.Staff, superuser: q.Superuser}
		for _, g := range q.Groups {
			c.groups |= 1 << bits[nameKey{name: g}]
			hp.groups = true
		}
		for _, p := range q.Perms {
			c.perms |= 1 << bits[nameKey{perm: true, name: p}]
		}
		hp.reqs = append(hp.reqs, c)
	}
	hp.perms = true
	hp.needs.perms.Add(1)
	if hp.groups {
		hp.needs.groups.Add(1)
	}
	if !hp.permStore.PermissionsPushed() {
		h.logger.Warn("the store does not push changes to groups, permissions and the staff and superuser flags "+
			"(on PostgreSQL: run caddy token migrate --notify): requirements are checked against what was read up to the cache ttl ago",
			zap.String("store", caddy.GetModuleName(h.store)))
	}
	return nil
}

// permissionsPushed tells whether the store pushes every change the
// handler's requirements read, for the cache's ttl.
func (h *TokenAuth) permissionsPushed() bool {
	return h.perms == nil || !h.perms.perms || h.perms.permStore.PermissionsPushed()
}

// cleanupPermissions gives back what provisionPermissions took; a second
// call gives back nothing.
func (h *TokenAuth) cleanupPermissions() {
	hp := h.perms
	if hp == nil || hp.needs == nil {
		return
	}
	names.release(hp.keys)
	if hp.perms {
		hp.needs.perms.Add(-1)
	}
	if hp.groups {
		hp.needs.groups.Add(-1)
	}
	needsMu.Lock()
	if hp.needs.handlers--; hp.needs.handlers == 0 {
		delete(needs, hp.storeKey)
	}
	needsMu.Unlock()
	hp.needs, hp.keys = nil, nil
}

// userPerms is what an identity holds of its user's flags and required
// names, in one word: a bit per name of names (the groups it is in, the
// permissions granted to it or its groups, among those some handler
// requires), is_staff, is_superuser, and whether they were loaded at all.
type userPerms uint64

const (
	permsLoaded    userPerms = 1 << 63
	permsStaff     userPerms = 1 << 62
	permsSuperuser userPerms = 1 << 61
)

func (p userPerms) staff() bool     { return p&permsStaff != 0 }
func (p userPerms) superuser() bool { return p&permsSuperuser != 0 }

// Placeholder names of the permissions.
const (
	placeholderStaff     = "http.auth.user.is_staff"
	placeholderSuperuser = "http.auth.user.is_superuser"
	placeholderGroups    = "http.auth.user.groups"
)

// permsVars answers the identity placeholders, as identityVars does, and
// those of the permissions: {http.auth.user.is_staff} and
// {http.auth.user.is_superuser} (booleans), and {http.auth.user.groups},
// the names joined by "," (a string), where groups is not nil. Everything
// is boxed once, so that reading them allocates nothing.
func permsVars(userID, username string, p userPerms, groups any) caddy.ReplacerFunc {
	idAny, nameAny := any(userID), any(username)
	return func(key string) (any, bool) {
		switch key {
		case placeholderUserID:
			return idAny, true
		case placeholderUsername:
			return nameAny, true
		case placeholderStaff:
			return p.staff(), true
		case placeholderSuperuser:
			return p.superuser(), true
		case placeholderGroups:
			return groups, groups != nil
		}
		return nil, false
	}
}

// identity makes the cached identity of id, with its user's permissions
// where any handler of the store requires something. A user gone between
// the lookup and the permissions' query is a key not found.
func (h *TokenAuth) identity(ctx context.Context, id store.Identity) (cachedIdentity, error) {
	hp := h.perms
	if !id.Active || hp == nil || hp.permStore == nil || hp.needs.perms.Load() == 0 {
		return newCachedIdentity(id), nil
	}
	sp, err := hp.permStore.UserPermissions(ctx, id.ID)
	if errors.Is(err, store.ErrNoUser) {
		return cachedIdentity{}, fmt.Errorf("user %s gone: %w: %w", id.ID, store.ErrNotFound, err)
	}
	if err != nil {
		return cachedIdentity{}, err
	}
	return permsIdentity(id, sp, hp.needs.groups.Load() > 0), nil
}

// permsIdentity is the cached identity of id with what the requirements
// read of sp, and the groups' names when a handler requires a group.
func permsIdentity(id store.Identity, sp store.UserPermissions, withGroups bool) cachedIdentity {
	p := permsLoaded | names.bits(sp.Groups, sp.Perms)
	if sp.Staff {
		p |= permsStaff
	}
	if sp.Superuser {
		p |= permsSuperuser
	}
	var groups any
	if withGroups {
		groups = strings.Join(sp.Groups, ",")
	}
	return cachedIdentity{vars: permsVars(id.ID, id.Username, p, groups), perms: p}
}

// authorize applies the requirements to an authenticated request (not to
// the logout endpoint), and optional read_only to one without
// credentials, as DRF's check_permissions does after authentication.
func (h *TokenAuth) authorize(r *http.Request, a *authResult) {
	switch a.outcome {
	case authOK:
		if h.perms == nil || h.perms.reqs == nil || (h.Logout != "" && r.URL.Path == h.Logout) {
			return
		}
		if !h.perms.allow(a.id.perms) {
			a.outcome, a.err = authForbidden, drf.ErrPermissionDenied
		}
	case authAnonymous:
		if h.ReadOnly && !safeMethod(r.Method) {
			a.outcome, a.err = authRefused, drf.ErrNotProvided
		}
	}
}

// allow tells whether the user of p meets every requirement; without
// permissions loaded, none.
func (hp *handlerPerms) allow(p userPerms) bool {
	if p&permsLoaded == 0 {
		return false
	}
	for i := range hp.reqs {
		if !hp.reqs[i].holds(p) {
			return false
		}
	}
	return true
}

// safeMethod is DRF's SAFE_METHODS (GET, HEAD, OPTIONS), on the method as
// Django's request.method has it, upper-cased.
func safeMethod(m string) bool {
	return strings.EqualFold(m, http.MethodGet) || strings.EqualFold(m, http.MethodHead) || strings.EqualFold(m, http.MethodOptions)
}
