// Package cli is the skillbuild command line: each command parses its
// flags into options, makes one library call (config, engine, scan, store,
// runtime), and prints the result, as text or as one --json document.
// Errors are printed once, by Main, and mapped there to the documented
// exit codes.
package cli
