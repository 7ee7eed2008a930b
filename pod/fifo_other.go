//go:build !linux

package pod

import "os"

func makeFifo(string) error                          { return errNotLinux }
func openFifoReader(string) (*os.File, error)        { return nil, errNotLinux }
func openFifoWriter(string) (*os.File, error)        { return nil, errNotLinux }
func openFifoInput(string) (*os.File, error)         { return nil, errNotLinux }
func pipeSize(*os.File) int                          { return 0 }
func pipeMax() int                                   { return 0 }
func readReady(*os.File) (*relayScratch, int, error) { return nil, 0, errNotLinux }
