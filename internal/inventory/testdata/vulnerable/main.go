// Command vulnerable is a test guest linked against golang.org/x/text
// v0.3.5, a version with published advisories.
package main

import (
	"fmt"
	"os"

	"golang.org/x/text/language"
)

func main() {
	tags, _, err := language.ParseAcceptLanguage(os.Getenv("HTTP_ACCEPT_LANGUAGE"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Print("Content-Type: text/plain\r\n\r\n")
	for _, t := range tags {
		fmt.Println(t)
	}
}
