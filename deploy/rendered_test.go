package deploy

import (
	"os"
	"path/filepath"
	"testing"
)

// TestRenderedIsCurrent fails when rendered/ no longer matches the chart:
// users without Helm apply those files.
func TestRenderedIsCurrent(t *testing.T) {
	const fix = "regenerate with: cd deploy && go generate ./..."
	for _, env := range Environments {
		if env.Example {
			continue
		}
		t.Run(env.Name, func(t *testing.T) {
			files, err := Render(ChartDir, env)
			if err != nil {
				t.Fatal(err)
			}
			dir := RenderedDir(env)
			entries, err := os.ReadDir(dir)
			if err != nil {
				t.Fatalf("%v; %s", err, fix)
			}
			for _, e := range entries {
				if _, ok := files[e.Name()]; !ok {
					t.Errorf("%s/%s is not rendered by the chart any more; %s", dir, e.Name(), fix)
				}
			}
			for _, name := range SortedKeys(files) {
				have, err := os.ReadFile(filepath.Join(dir, name))
				if err != nil {
					t.Errorf("%v; %s", err, fix)
					continue
				}
				if string(have) != Header(env, name)+files[name] {
					t.Errorf("%s/%s is stale; %s", dir, name, fix)
				}
			}
			// The committed files decode as strictly as the chart's output.
			for _, e := range entries {
				b, err := os.ReadFile(filepath.Join(dir, e.Name()))
				if err != nil {
					t.Fatal(err)
				}
				if _, err := decodeStrict(b); err != nil {
					t.Errorf("%s/%s: %v", dir, e.Name(), err)
				}
			}
		})
	}
}
