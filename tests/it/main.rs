mod format_props;
mod vectors;
