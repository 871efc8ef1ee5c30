//go:build !linux

package main

import "os"

// terminalWidth is 0 (unknown) off Linux: tables are cut only to --width.
func terminalWidth(*os.File) int { return 0 }
