// Command render writes the chart's manifests for each environment to
// rendered/<environment>/, for users without Helm. Run it from the deploy
// module's root: go generate ./...
package main

import (
	"fmt"
	"os"

	"github.com/pnats/switchyard/deploy"
)

func main() {
	if err := deploy.WriteRendered("."); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
