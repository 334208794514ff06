package main

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/moatfn/moat/internal/bundle"
	"github.com/moatfn/moat/internal/manifest"
)

func newDevCmd(e *env) *cobra.Command {
	var interval time.Duration
	cmd := &cobra.Command{
		Use:   "dev [DIR]",
		Short: "Build and deploy the function in DIR (default .), then again on every change to its files, until interrupted",
		Long: "The development loop: the function is built (when it has Go sources) and\n" +
			"deployed, then its folder is watched; each change to a source, go.mod,\n" +
			"moat.yaml or a file it names builds and deploys again. Build progress and\n" +
			"errors go to stderr as they happen; a failed build or deploy leaves the\n" +
			"version that served before serving, and the watch goes on.",
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := "."
			if len(args) == 1 {
				dir = args[0]
			}
			if _, err := os.Stat(filepath.Join(dir, manifest.FileName)); err != nil {
				return fmt.Errorf("%s: no %s to develop", dir, manifest.FileName)
			}
			c, err := e.client()
			if err != nil {
				return err
			}
			stderr := cmd.ErrOrStderr()
			cycle := func() {
				if bundle.HasSources(dir) {
					if _, err := buildWithProgress(cmd, dir); err != nil {
						fmt.Fprintf(stderr, "build failed; the version deployed before keeps serving:\n%v\n", err)
						return
					}
				}
				b, err := bundle.Read(dir)
				if err != nil {
					fmt.Fprintf(stderr, "not deployed: %v\n", err)
					return
				}
				v, err := c.Deploy(cmd.Context(), b)
				if err != nil {
					fmt.Fprintf(stderr, "not deployed: %v\n", err)
					return
				}
				fmt.Fprintf(cmd.OutOrStdout(), "deployed %s version %s at %s\n", v.Manifest.Name, v.ID, time.Now().Format("15:04:05"))
			}
			seen := watchState(dir)
			cycle()
			fmt.Fprintf(stderr, "watching %s for changes (Ctrl-C to stop)\n", dir)
			tick := time.NewTicker(interval)
			defer tick.Stop()
			for {
				select {
				case <-cmd.Context().Done():
					return nil
				case <-tick.C:
				}
				now := watchState(dir)
				if now == seen {
					continue
				}
				// Let a save that writes several files finish.
				time.Sleep(interval)
				seen = watchState(dir)
				cycle()
			}
		},
	}
	cmd.Flags().DurationVar(&interval, "interval", 300*time.Millisecond, "how often to look for changes")
	return cmd
}

// watchState sums up the files of a function folder that a build or a
// deploy reads: their names, sizes and modification times. The module the
// build writes, hidden files and folders are left out.
func watchState(dir string) string {
	var module string
	if src, err := os.ReadFile(filepath.Join(dir, manifest.FileName)); err == nil {
		if m, err := manifest.Parse(src); err == nil {
			module = filepath.Join(dir, filepath.FromSlash(m.Module))
		}
	}
	var lines []string
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if path != dir && strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() || path == module || len(lines) > 10000 {
			return nil
		}
		if info, err := d.Info(); err == nil {
			lines = append(lines, fmt.Sprintf("%s %d %d", path, info.Size(), info.ModTime().UnixNano()))
		}
		return nil
	})
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}
