package model

import "context"

// ReadConfig reads the Config of the model in dir (local or s3://) from its
// config.json and generation_config.json, without loading weights: for a
// caller that needs the shape of a model it does not hold, such as bench
// infer's FLOP estimate of a draft model.
func ReadConfig(ctx context.Context, dir string) (Config, error) { return readConfig(ctx, dir) }
