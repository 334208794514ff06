//go:build wasip1

package fn

import (
	"fmt"
	"os"
)

// moatHandle is the entry point of a reactor module (docs/snapshots.md in
// the Moat repository): the host restores the snapshot taken after
// _initialize, then calls it once. It asks the host for the request's CGI
// variables, reads the body from standard input and writes the CGI response
// to standard output, as a command module does.
//
//go:wasmexport moat_handle
func moatHandle() {
	reply, err := roundTrip(opRequest, nil)
	if err == nil {
		var env map[string]string
		if env, err = decodeRequest(reply); err == nil {
			// As in a command, the CGI variables are the environment too
			// (REMOTE_USER, the caller, is read there). The instance
			// ends with the request, and its environment with it.
			for k, v := range env {
				os.Setenv(k, v)
			}
			err = serve(env, os.Stdin, os.Stdout)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "fn:", err)
		os.Exit(1)
	}
}
