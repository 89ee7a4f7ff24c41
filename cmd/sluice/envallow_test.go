package main

import (
	"os"
	"strings"
	"testing"
)

// sluice run reads the environment only where the operator allows it with
// --env-allow (or SLUICE_ENV_ALLOW), and never a credential.
func TestRunEnvAllow(t *testing.T) {
	planDir(t, "")
	data, err := os.ReadFile("plan.yaml")
	if err != nil {
		t.Fatal(err)
	}
	plan := strings.Replace(string(data), `min: "50"`, `min: '{{ env "SLUICE_TEST_MIN" | default "50" }}'`, 1)
	if err := os.WriteFile("env.yaml", []byte(plan), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SLUICE_TEST_MIN", "90")
	t.Setenv("SLUICE_ENV_ALLOW", "")
	code, _, errOut := sluice(t, "run", "env.yaml")
	if code != 1 || !strings.Contains(errOut, `env "SLUICE_TEST_MIN" is not allowed`) || !strings.Contains(errOut, "--env-allow") {
		t.Fatalf("without --env-allow: exit %d\n%s", code, errOut)
	}
	code, out, errOut := sluice(t, "run", "env.yaml", "--env-allow", "SLUICE_TEST_MIN")
	_, want, _ := sluice(t, "run", "plan.yaml", "--param", "min=90")
	if code != 0 || wroteLine.FindStringSubmatch(out) == nil || wroteLine.FindStringSubmatch(out)[1] != wroteLine.FindStringSubmatch(want)[1] {
		t.Fatalf("--env-allow: exit %d\n%s%s\nwant the rows of min=90:\n%s", code, out, errOut, want)
	}
	t.Setenv("SLUICE_ENV_ALLOW", "SLUICE_TEST_MIN")
	if code, _, errOut := sluice(t, "run", "env.yaml"); code != 0 {
		t.Fatalf("SLUICE_ENV_ALLOW: exit %d\n%s", code, errOut)
	}
	secret := strings.Replace(plan, "SLUICE_TEST_MIN", "SLUICE_TOKEN", 1)
	if err := os.WriteFile("secret.yaml", []byte(secret), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SLUICE_TOKEN", "tok-never-shown")
	code, out, errOut = sluice(t, "run", "secret.yaml", "--env-allow", "SLUICE_TOKEN")
	if code != 1 || !strings.Contains(errOut, "holds a credential") || strings.Contains(out+errOut, "tok-never-shown") {
		t.Fatalf("the token: exit %d\n%s%s", code, out, errOut)
	}
}
