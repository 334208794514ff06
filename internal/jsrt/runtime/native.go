//go:build !nativebench

package main

// nativeBench is true in the native benchmark's build (-tags nativebench),
// whose init loads nothing: the runtime as deployed is built without it.
const nativeBench = false
