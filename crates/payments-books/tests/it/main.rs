mod formats;
mod issue;
