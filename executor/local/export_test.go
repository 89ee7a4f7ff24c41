package local

// SetDictHook sets (nil clears) the hook told which group keys stay
// dictionary-encoded: where is "scan" or "join".
func SetDictHook(f func(where string, keys []string)) { dictChosen = f }
