package plans

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestLints(t *testing.T) {
	ls := Lints{
		{File: "p.yaml", Pos: Pos{3, 1}, Path: "read.parquet", Msg: "unreachable", Severity: Note},
		{File: "p.yaml", Pos: Pos{2, 7}, Path: "name", Msg: "bad"},
		{File: "p.yaml", Pos: Pos{2, 7}, Path: "name", Msg: "bad"},
		{File: "p.yaml", Msg: "whole file"},
	}.Sort()
	want := "p.yaml: whole file\np.yaml:2:7: name: bad\np.yaml:3:1: read.parquet: note: unreachable"
	if ls.Error() != want {
		t.Errorf("Error:\n%s\nwant\n%s", ls.Error(), want)
	}
	if !errors.Is(ls, ErrInvalid) || !errors.Is(ls.Err(), ErrInvalid) || len(ls.Errors()) != 2 {
		t.Errorf("errors: %v %v", ls.Err(), ls.Errors())
	}
	notes := Lints{ls[2]}
	if notes.HasErrors() || notes.Err() != nil || errors.Is(notes, ErrInvalid) {
		t.Errorf("a note is not an error")
	}
}

// TestUnreachableSourceIsANote: validate reports an s3:// source it cannot
// reach as a note and checks nothing that needs its schema.
func TestUnreachableSourceIsANote(t *testing.T) {
	for k, v := range map[string]string{
		"AWS_ENDPOINT_URL": "http://127.0.0.1:1", "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y",
		"AWS_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true", "AWS_MAX_ATTEMPTS": "1",
	} {
		t.Setenv(k, v)
	}
	start := time.Now()
	_, lints := Check("p.yaml", []byte("name: x\nread: {parquet: s3://bucket/in/}\nsteps: [{filter: \"pirce > 1\"}]\nwrite: {parquet: out/}\n"), Vars{})
	if len(lints) != 1 || lints[0].Severity != Note || lints[0].Pos != (Pos{2, 17}) ||
		!strings.HasPrefix(lints[0].Error(), "p.yaml:2:17: read.parquet: note: the source could not be read, so its columns and the steps' expressions were not checked: ") {
		t.Errorf("lints: %v", lints)
	}
	t.Logf("%s in %s", lints, time.Since(start))
}
