"""What every stage shares: the data contract (`common.contract`) and the command-line pattern
(`common.cli`). It imports nothing from the stages."""
