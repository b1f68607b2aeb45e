package storetest

import (
	"context"
	"testing"
)

// testMigrate: a store made with its tables has Django's; Migrate changes
// nothing where they are, rows included, and makes Django's tables again
// where they are missing.
func testMigrate(t *testing.T, open func(*testing.T) *Fixture) {
	f := open(t)
	s, ctx := f.Store, context.Background()
	if got := f.Schema(t); got != f.WantSchema {
		t.Fatalf("tables as provisioned differ from Django's:\n got %s\nwant %s", got, f.WantSchema)
	}
	addUser(t, s, "john", true)
	key := tokenFor(t, s, "john")
	for i := range 2 {
		if err := s.Migrate(ctx); err != nil {
			t.Fatalf("Migrate #%d over existing tables: %v", i+1, err)
		}
		if got := f.Schema(t); got != f.WantSchema {
			t.Fatalf("tables after Migrate #%d differ from Django's:\n got %s\nwant %s", i+1, got, f.WantSchema)
		}
		if id, err := s.Lookup(ctx, key); err != nil || id.Username != "john" {
			t.Fatalf("after Migrate #%d: Lookup = %+v, %v", i+1, id, err)
		}
	}

	f.DropTables(t)
	for i := range 2 {
		if err := s.Migrate(ctx); err != nil {
			t.Fatalf("Migrate #%d with the tables missing: %v", i+1, err)
		}
		if got := f.Schema(t); got != f.WantSchema {
			t.Fatalf("tables made by Migrate #%d differ from Django's:\n got %s\nwant %s", i+1, got, f.WantSchema)
		}
	}
	addUser(t, s, "amy", true)
	k := tokenFor(t, s, "amy")
	if id, err := s.Lookup(ctx, k); err != nil || id.Username != "amy" {
		t.Errorf("in the tables Migrate made: Lookup = %+v, %v", id, err)
	}
}
