package tokenauth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"go.uber.org/zap"

	"github.com/tokenauth/caddy-tokenauth/internal/cache"
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
// under no_challenge). The handler's logout and logout_all endpoints are
// not subject to them, as knox's LogoutView and LogoutAllView are only
// IsAuthenticated; nor is its login endpoint.
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
	// cached identity's permissions (permBits), beside the two flags.
	maxNames = 62
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
	distinct := make(map[nameKey]bool)
	for i := range h.Require {
		q := &h.Require[i]
		if !q.Staff && !q.Superuser && len(q.Groups) == 0 && len(q.Perms) == 0 {
			return errors.New("require: a requirement needs staff, superuser, groups or perms")
		}
		for _, g := range q.Groups {
			if g == "" || utf8.RuneCountInString(g) > groupNameMaxLength {
				return fmt.Errorf("require group %q: want a group name of 1 to %d characters (auth_group.name)", g, groupNameMaxLength)
			}
			distinct[nameKey{name: g}] = true
		}
		for _, p := range q.Perms {
			app, codename, ok := strings.Cut(p, ".")
			if !ok || app == "" || codename == "" {
				return fmt.Errorf("require perm %q: want <app_label>.<codename>, as user.has_perm takes it", p)
			}
			distinct[nameKey{perm: true, name: p}] = true
		}
	}
	if len(distinct) > maxNames {
		return fmt.Errorf("require: %d distinct group and permission names, at most %d", len(distinct), maxNames)
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
	kind, count := "", 0 // the kind of names being read, and how many
	words := 0
	for d.NextArg() {
		w := d.Val()
		words++
		switch {
		case w == "group" || w == "perm":
			if kind != "" && count == 0 {
				return d.Errf("require %s: want at least one name", kind)
			}
			kind, count = w, 0
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
		count++
	}
	switch {
	case words == 0:
		return d.ArgErr()
	case kind != "" && count == 0:
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
	refs  [maxNames]int                     // by bit: the handlers requiring its name
	index atomic.Pointer[map[nameKey]uint8] // name → bit; read by loads, replaced whole
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
		}
	}
}

// bits are the bits of the names among those given, as the table stands.
func (t *nameTable) bits(groups, perms []string) permBits {
	idx := t.index.Load()
	if idx == nil {
		return 0
	}
	var b permBits
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
	users     *usersCache // the cache's, with knox tokens (see userPerms)
	released  bool        // by cleanupPermissions (only Cleanup reads it)
}

// requirement is a Requirement with its names as bits.
type requirement struct {
	staff, superuser bool
	groups, perms    permBits
}

// holds tells whether the user of p meets the requirement: a superuser
// has every permission, and only its groups.
func (q *requirement) holds(p permBits) bool {
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
		hp.keys = nil // nothing acquired, nothing to release
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
// call gives back nothing. It changes nothing the request path reads: a
// request the old config still serves after a reload keeps working.
func (h *TokenAuth) cleanupPermissions() {
	hp := h.perms
	if hp == nil || hp.released {
		return
	}
	hp.released = true
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
}

// permBits are an identity's flags and required names, in one word: a
// bit per name of names (the groups its user is in, the permissions
// granted to it or its groups, among those some handler requires), then
// is_superuser and is_staff.
type permBits uint64

const (
	permsSuperuser permBits = 1 << maxNames
	permsStaff     permBits = 1 << (maxNames + 1)
)

func (p permBits) staff() bool     { return p&permsStaff != 0 }
func (p permBits) superuser() bool { return p&permsSuperuser != 0 }

// userPerms is what an identity holds of its user's permissions, for the
// requirements and the placeholders. It rides in the identity's provider
// closure (see permsVars), as the token state does, so that the cached
// value stays one word.
type userPerms struct {
	bits permBits
	// groups is {http.auth.user.groups}, the names joined by "," (a
	// string, boxed once); nil where no handler requires a group.
	groups any
}

// flagsOnly are the permissions of users with no required name, where no
// handler requires a group, by their flags' bits (staff and superuser,
// shifted down): shared, so that such an identity costs nothing more.
var flagsOnly = func() (f [4]userPerms) {
	for i := range f {
		f[i].bits = permBits(i) << maxNames
	}
	return f
}()

// anonymousPerms answers the placeholders of a request let through
// without credentials as Django's AnonymousUser has them: not staff, not
// superuser, in no group.
var anonymousPerms = &userPerms{groups: any("")}

// Placeholder names of the permissions, and the provider's key of the
// permissions: not a name a placeholder can have, and asked only by
// cachedIdentity.perms.
const (
	placeholderStaff     = "http.auth.user.is_staff"
	placeholderSuperuser = "http.auth.user.is_superuser"
	placeholderGroups    = "http.auth.user.groups"
	permsKey             = "\x00token_auth.perms"
)

// perms is the identity's permissions, or nil where none were loaded (no
// handler of the store requires anything, an inactive user).
func (ci *cachedIdentity) perms() *userPerms {
	if ci.vars == nil {
		return nil
	}
	v, _ := ci.vars(permsKey)
	p, _ := v.(*userPerms)
	return p
}

// placeholder answers the permissions' placeholders:
// {http.auth.user.is_staff} and {http.auth.user.is_superuser} (booleans),
// and {http.auth.user.groups} (a string) where the groups were kept.
func (p *userPerms) placeholder(key string) (any, bool) {
	switch key {
	case permsKey:
		return p, true
	case placeholderStaff:
		return p.bits.staff(), true
	case placeholderSuperuser:
		return p.bits.superuser(), true
	case placeholderGroups:
		return p.groups, p.groups != nil
	}
	return nil, false
}

// permsVars answers the identity placeholders, as newCachedIdentity's
// provider does (the token state's key included, where tok is not nil),
// and those of p, with everything boxed once, so that reading them
// allocates nothing. Without a token state the closure stays in the size
// class of identityVars'.
func permsVars(userID, username string, tok *tokenState, p *userPerms) caddy.ReplacerFunc {
	idAny, nameAny := any(userID), any(username)
	if tok == nil {
		return func(key string) (any, bool) {
			switch key {
			case placeholderUserID:
				return idAny, true
			case placeholderUsername:
				return nameAny, true
			}
			return p.placeholder(key)
		}
	}
	return func(key string) (any, bool) {
		switch key {
		case placeholderUserID:
			return idAny, true
		case placeholderUsername:
			return nameAny, true
		case tokenStateKey:
			return tok, true
		}
		return p.placeholder(key)
	}
}

// identity makes the cached identity of id and tok (as
// newCachedIdentity), with its user's permissions where any handler of
// the store requires something. A user gone between the lookup and the
// permissions' query is a key not found.
func (h *TokenAuth) identity(ctx context.Context, id store.Identity, tok *tokenState) (cachedIdentity, error) {
	hp := h.perms
	if !id.Active || hp == nil || hp.permStore == nil || (!hp.perms && hp.needs.perms.Load() == 0) {
		return newCachedIdentity(id, tok), nil
	}
	p, err := h.userPerms(ctx, id.ID)
	if errors.Is(err, store.ErrNoUser) {
		return cachedIdentity{}, fmt.Errorf("user %s gone: %w: %w", id.ID, store.ErrNotFound, err)
	}
	if err != nil {
		return cachedIdentity{}, err
	}
	return permsIdentity(id, tok, p), nil
}

// userPerms reads the permissions of the user, or, in a cache of knox
// tokens, takes those another of its tokens loaded since the cache last
// changed: one query per user, not per token.
func (h *TokenAuth) userPerms(ctx context.Context, userID string) (*userPerms, error) {
	hp := h.perms
	withGroups := hp.groups || hp.needs.groups.Load() > 0
	query := func(ctx context.Context, userID string) (*userPerms, error) {
		sp, err := hp.permStore.UserPermissions(ctx, userID)
		if err != nil {
			return nil, err
		}
		return newUserPerms(sp, withGroups), nil
	}
	if hp.users == nil {
		return query(ctx, userID)
	}
	// Loaded at the identity cache's generation of now, or before a
	// change the cache has since flushed: not to be shared.
	gen := h.cache.Generation()
	if v, known, found := hp.users.Get(userID); known && found {
		if v.gen == gen {
			return v.p, nil
		}
		hp.users.Forget(userID)
	}
	v, err := hp.users.Lookup(ctx, userID, func(ctx context.Context, userID string) (permsAt, error) {
		p, err := query(ctx, userID)
		return permsAt{gen: gen, p: p}, err
	})
	if err != nil {
		return nil, err
	}
	if v.gen != gen { // another load's, begun before a change
		return query(ctx, userID)
	}
	return v.p, nil
}

// usersCache holds the permissions of each user (by auth_user.id), with
// the generation of the identity cache they were loaded at.
type usersCache = cache.Cache[permsAt]

type permsAt struct {
	gen uint64
	p   *userPerms
}

func newUsersCache(ttl time.Duration, size int) *usersCache {
	return cache.New[permsAt](ttl, time.Nanosecond, size, store.ErrNoUser) // a user gone is not remembered
}

// shareUsers gives the handler the users' permissions of its cache (nil
// for a cache of DRF tokens, one a user).
func (h *TokenAuth) shareUsers(u *usersCache) {
	if h.perms != nil {
		h.perms.users = u
	}
}

// permsIdentity is the cached identity of an active user id, with tok,
// and p.
func permsIdentity(id store.Identity, tok *tokenState, p *userPerms) cachedIdentity {
	if tok != nil {
		tok.active = id.Active
	}
	return cachedIdentity{vars: permsVars(id.ID, id.Username, tok, p)}
}

// newUserPerms keeps of sp what the requirements read, and the groups'
// names when withGroups.
func newUserPerms(sp store.UserPermissions, withGroups bool) *userPerms {
	bits := names.bits(sp.Groups, sp.Perms)
	if sp.Staff {
		bits |= permsStaff
	}
	if sp.Superuser {
		bits |= permsSuperuser
	}
	if !withGroups && bits&^(permsStaff|permsSuperuser) == 0 {
		return &flagsOnly[bits>>maxNames]
	}
	p := &userPerms{bits: bits}
	if withGroups {
		p.groups = strings.Join(sp.Groups, ",")
	}
	return p
}

// authorize applies the requirements to an authenticated request (not to
// the logout endpoint), and optional read_only to one without
// credentials, as DRF's check_permissions does after authentication.
func (h *TokenAuth) authorize(r *http.Request, a *authResult) {
	switch a.outcome {
	case authOK:
		if h.perms == nil || h.perms.reqs == nil || h.isLogout(r) {
			return
		}
		if !h.perms.allow(a.id.perms()) {
			a.outcome, a.err = authForbidden, drf.ErrPermissionDenied
		}
	case authAnonymous:
		if h.ReadOnly && !safeMethod(r.Method) {
			a.outcome, a.err = authRefused, drf.ErrNotProvided
		}
	}
}

// allow tells whether the user of p meets every requirement; nil p (no
// permissions loaded) meets none.
func (hp *handlerPerms) allow(p *userPerms) bool {
	if p == nil {
		return false
	}
	for i := range hp.reqs {
		if !hp.reqs[i].holds(p.bits) {
			return false
		}
	}
	return true
}

// isLogout tells a request of the logout or logout_all endpoint, which
// only needs a valid token (knox's LogoutView and LogoutAllView are
// IsAuthenticated alone).
func (h *TokenAuth) isLogout(r *http.Request) bool {
	return (h.Logout != "" && r.URL.Path == h.Logout) || (h.LogoutAll != "" && r.URL.Path == h.LogoutAll)
}

// safeMethod is DRF's SAFE_METHODS (GET, HEAD, OPTIONS), on the method as
// Django's request.method has it, upper-cased.
func safeMethod(m string) bool {
	return strings.EqualFold(m, http.MethodGet) || strings.EqualFold(m, http.MethodHead) || strings.EqualFold(m, http.MethodOptions)
}
