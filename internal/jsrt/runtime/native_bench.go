//go:build nativebench

package main

const nativeBench = true
