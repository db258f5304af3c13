// A kubectl built from the k8s.io/kubectl library, as kubernetes' own cmd/kubectl builds it: the
// newest kubectl the Go module proxy serves, for the gateway's tests (scripts/test-kubectl).
package main

import (
	"k8s.io/component-base/cli"
	"k8s.io/kubectl/pkg/cmd"
	"k8s.io/kubectl/pkg/cmd/util"
)

func main() {
	command := cmd.NewDefaultKubectlCommand()
	if err := cli.RunNoErrOutput(command); err != nil {
		util.CheckErr(err)
	}
}
