package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/moatfn/moat/internal/cloudevent"
	"github.com/moatfn/moat/internal/events"
)

// readData is the value of a -d flag: the text itself, @FILE for a
// file's content, or @- for standard input.
func readData(cmd *cobra.Command, data string, limit int64) ([]byte, error) {
	if !strings.HasPrefix(data, "@") {
		return []byte(data), nil
	}
	var r io.Reader
	if data == "@-" {
		r = cmd.InOrStdin()
	} else {
		f, err := os.Open(data[1:])
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("-d %s: more than %d KiB", data, limit>>10)
	}
	return b, nil
}

func newPublishCmd(e *env) *cobra.Command {
	var data, typ, contentType, id, source, subject string
	cmd := &cobra.Command{
		Use:   "publish SUBJECT",
		Short: "Publish an event (a CloudEvent) to the functions whose queue triggers take SUBJECT",
		Example: `  moat publish orders.created -d '{"order":42}'
  moat publish orders.created -d @order.json --type com.example.order.created
  moat publish orders.created -d @- < order.json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			body, err := readData(cmd, data, events.MaxData)
			if err != nil {
				return err
			}
			h := http.Header{}
			for k, v := range map[string]string{"Ce-Type": typ, "Ce-Id": id, "Ce-Source": source, "Ce-Subject": subject} {
				if v != "" {
					h.Set(k, cloudevent.Encode(v))
				}
			}
			if len(body) > 0 {
				if contentType == "" {
					contentType = "application/json"
				}
				h.Set("Content-Type", contentType)
			}
			c, err := e.client()
			if err != nil {
				return err
			}
			pub, err := c.Publish(cmd.Context(), args[0], h, body)
			if err != nil {
				return err
			}
			return e.print(pub, func(w io.Writer) {
				if pub.Duplicate {
					fmt.Fprintf(w, "event %s on %s was already published: kept once\n", pub.ID, pub.Subject)
					return
				}
				fmt.Fprintf(w, "published event %s on %s (sequence %d)\n", pub.ID, pub.Subject, pub.Sequence)
			})
		},
	}
	f := cmd.Flags()
	f.StringVarP(&data, "data", "d", "", "event data, @FILE, or @- for standard input")
	f.StringVar(&typ, "type", "", "CloudEvent type (default: the subject)")
	f.StringVar(&contentType, "content-type", "", "data content type (default application/json when there is data)")
	f.StringVar(&id, "id", "", "CloudEvent id (default: a fresh one); the same source and id within two minutes are kept once")
	f.StringVar(&source, "source", "", "CloudEvent source (default /api/ followed by your identity)")
	f.StringVar(&subject, "ce-subject", "", "CloudEvent subject attribute")
	return cmd
}

func newDLQCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dlq",
		Short: "A function's dead letters: the events it could not handle, kept to be looked at and replayed",
	}
	cmd.AddCommand(newDLQLsCmd(e), newDLQShowCmd(e), newDLQReplayCmd(e), newDLQPurgeCmd(e))
	return cmd
}

func newDLQLsCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "ls NAME",
		Short: "List a function's dead letters, oldest first, without their data",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := e.client()
			if err != nil {
				return err
			}
			ls, err := c.Letters(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if ls.Letters == nil {
				ls.Letters = []*events.Letter{}
			}
			return e.print(ls, func(w io.Writer) {
				if len(ls.Letters) == 0 {
					fmt.Fprintf(w, "%s has no dead letters\n", args[0])
					return
				}
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tTIME\tSUBJECT\tREASON\tSTATUS\tATTEMPTS\tEVENT\tDETAIL")
				for _, l := range ls.Letters {
					evID := "-"
					if l.Event != nil {
						evID = l.Event.ID
					}
					fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", l.ID, l.Time.UTC().Format(time.RFC3339), l.Subject, l.Reason,
						orDash(statusText(l.Status)), l.Attempts, evID, orDash(oneLine(string(printable([]byte(l.Detail))), 60)))
				}
				tw.Flush()
				if ls.Total > len(ls.Letters) {
					fmt.Fprintf(w, "(%d of %d shown)\n", len(ls.Letters), ls.Total)
				}
			})
		},
	}
}

func newDLQShowCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "show NAME ID",
		Short: "Show one dead letter: why it failed, every attempt's invocation id, and the event with its data",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := strconv.ParseUint(args[1], 10, 64)
			if err != nil {
				return fmt.Errorf("ID %q: want the number moat dlq ls shows", args[1])
			}
			c, err := e.client()
			if err != nil {
				return err
			}
			l, err := c.Letter(cmd.Context(), args[0], id)
			if err != nil {
				return err
			}
			return e.print(l, func(w io.Writer) {
				fmt.Fprintf(w, "dead letter %d of %s\n", l.ID, l.Function)
				fmt.Fprintf(w, "reason:     %s", l.Reason)
				if l.Status != 0 {
					fmt.Fprintf(w, " (%s)", statusText(l.Status))
				}
				fmt.Fprintln(w)
				if l.Detail != "" {
					fmt.Fprintf(w, "detail:     %s\n", printable([]byte(l.Detail)))
				}
				fmt.Fprintf(w, "subject:    %s (trigger %s)\n", l.Subject, l.Trigger)
				fmt.Fprintf(w, "time:       %s\n", l.Time.UTC().Format(time.RFC3339))
				fmt.Fprintf(w, "publisher:  %s\n", orDash(l.Publisher))
				fmt.Fprintf(w, "attempts:   %d\n", l.Attempts)
				for _, inv := range l.InvocationIDs {
					fmt.Fprintf(w, "  invocation %s\n", inv)
				}
				if ev := l.Event; ev != nil {
					fmt.Fprintf(w, "event:      id %s, source %s, type %s\n", ev.ID, ev.Source, ev.Type)
					if ev.Time != "" {
						fmt.Fprintf(w, "            time %s\n", ev.Time)
					}
					if ev.DataContentType != "" {
						fmt.Fprintf(w, "            content type %s\n", ev.DataContentType)
					}
					fmt.Fprintf(w, "data (%d bytes):\n", len(ev.Data))
					w.Write(printable(ev.Data))
					if len(ev.Data) > 0 && ev.Data[len(ev.Data)-1] != '\n' {
						fmt.Fprintln(w)
					}
				}
			})
		},
	}
}

func newDLQReplayCmd(e *env) *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "replay NAME [ID...]",
		Short: "Send dead letters to the function again (the letter goes once its replay is published)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var ids []uint64
			for _, a := range args[1:] {
				id, err := strconv.ParseUint(a, 10, 64)
				if err != nil {
					return fmt.Errorf("ID %q: want the number moat dlq ls shows", a)
				}
				ids = append(ids, id)
			}
			if all == (len(ids) > 0) {
				return fmt.Errorf("%w: name the letters' IDs or give --all", errUsage)
			}
			c, err := e.client()
			if err != nil {
				return err
			}
			out, err := c.Replay(cmd.Context(), args[0], ids, all)
			if err != nil {
				return err
			}
			if out.Replayed == nil {
				out.Replayed = []*events.Published{}
			}
			return e.print(out, func(w io.Writer) {
				if len(out.Replayed) == 0 {
					fmt.Fprintf(w, "%s has no dead letters to replay\n", args[0])
				}
				for _, p := range out.Replayed {
					fmt.Fprintf(w, "replayed event %s (sequence %d)\n", p.ID, p.Sequence)
				}
			})
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "replay every dead letter of the function")
	return cmd
}

func newDLQPurgeCmd(e *env) *cobra.Command {
	var yes bool
	cmd := &cobra.Command{
		Use:   "purge NAME",
		Short: "Delete all of a function's dead letters (asks first on a terminal)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := e.client()
			if err != nil {
				return err
			}
			if !yes {
				if err := confirm(cmd, fmt.Sprintf("delete every dead letter of %s (their events are gone after this)?", args[0])); err != nil {
					return err
				}
			}
			n, err := c.Purge(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return e.print(map[string]int{"purged": n}, func(w io.Writer) { fmt.Fprintf(w, "purged %d dead letters of %s\n", n, args[0]) })
		},
	}
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask")
	return cmd
}

// statusText is an HTTP status as "500 Internal Server Error"; "" for 0.
func statusText(code int) string {
	if code == 0 {
		return ""
	}
	return fmt.Sprintf("%d %s", code, http.StatusText(code))
}

// oneLine is s on one line, cut to n runes.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

// printable is b with control characters other than newline and tab, and
// bytes that are not UTF-8, shown as \xNN, so that event data cannot drive
// the terminal.
func printable(b []byte) []byte {
	var out []byte
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		switch {
		case r == '\n' || r == '\t':
			out = append(out, b[0])
		case r == utf8.RuneError && n == 1, r < 0x20, r == 0x7f, r >= 0x80 && r < 0xa0:
			for _, c := range b[:n] {
				out = fmt.Appendf(out, "\\x%02x", c)
			}
		default:
			out = append(out, b[:n]...)
		}
		b = b[n:]
	}
	return out
}
