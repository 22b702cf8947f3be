//! [`Batch`]: counter updates sent together, and their [`Replies`].

use redis::{Pipeline, Value};

use crate::StoreError;

/// Where a command's reply is among a batch's [`Replies`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reply(usize);

/// One command of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `INCRBY key by` (`GET key` when `by` is 0); replies the counter's value after (0: missing).
    Add {
        /// The counter.
        key: String,
        /// How much to add.
        by: u64,
    },
    /// `PEXPIRE key millis`; no reply kept.
    Expire {
        /// The key.
        key: String,
        /// Its time to live.
        millis: u64,
    },
    /// `ZADD key now member`, `ZREMRANGEBYSCORE key -inf (since`, `ZCARD key`; replies the members
    /// seen since `since`.
    Heartbeat {
        /// The sorted set.
        key: String,
        /// This member.
        member: String,
        /// Now, in milliseconds since the Unix epoch.
        now_millis: u64,
        /// Members last seen before this are removed.
        since_millis: u64,
    },
}

/// Commands sent as one pipeline.
#[derive(Debug, Default)]
pub struct Batch {
    commands: Vec<Command>,
    replies: usize,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `by` to the counter `key` (`INCRBY`), or reads it when `by` is 0 (`GET`, which creates
    /// nothing); the reply is the counter's value after the addition (0 for a missing key).
    pub fn add(&mut self, key: &str, by: u64) -> Reply {
        self.commands.push(Command::Add {
            key: key.to_string(),
            by,
        });
        self.reply()
    }

    /// Makes `key` expire `millis` from now (`PEXPIRE`); its reply is not kept.
    pub fn expire(&mut self, key: &str, millis: u64) {
        self.commands.push(Command::Expire {
            key: key.to_string(),
            millis,
        });
    }

    /// Records `member` as seen at `now_millis` in the sorted set `key`, forgets members not seen
    /// since `since_millis`, and counts the rest: how many members have been seen since.
    pub fn heartbeat(
        &mut self,
        key: &str,
        member: &str,
        now_millis: u64,
        since_millis: u64,
    ) -> Reply {
        self.commands.push(Command::Heartbeat {
            key: key.to_string(),
            member: member.to_string(),
            now_millis,
            since_millis,
        });
        self.reply()
    }

    /// The batch's commands, in order.
    pub fn commands(&self) -> &[Command] {
        &self.commands
    }

    /// How many Redis commands the batch sends (a heartbeat is three).
    pub fn command_count(&self) -> usize {
        self.commands
            .iter()
            .map(|c| match c {
                Command::Heartbeat { .. } => 3,
                _ => 1,
            })
            .sum()
    }

    /// Whether it sends nothing.
    pub fn is_empty(&self) -> bool {
        self.commands.is_empty()
    }

    fn reply(&mut self) -> Reply {
        self.replies += 1;
        Reply(self.replies - 1)
    }

    pub(crate) fn pipeline(&self) -> Pipeline {
        let mut pipeline = redis::pipe();
        for command in &self.commands {
            match command {
                Command::Add { key, by: 0 } => {
                    pipeline.get(key);
                }
                Command::Add { key, by } => {
                    pipeline.incr(key, *by);
                }
                Command::Expire { key, millis } => {
                    pipeline
                        .pexpire(key, i64::try_from(*millis).unwrap_or(i64::MAX))
                        .ignore();
                }
                Command::Heartbeat {
                    key,
                    member,
                    now_millis,
                    since_millis,
                } => {
                    pipeline.zadd(key, member, *now_millis).ignore();
                    pipeline
                        .zrembyscore(key, "-inf", format!("({since_millis}"))
                        .ignore();
                    pipeline.zcard(key);
                }
            }
        }
        pipeline
    }

    pub(crate) fn replies(&self, values: Vec<Value>) -> Result<Replies, StoreError> {
        if values.len() != self.replies {
            return Err(StoreError::UnexpectedReply("a pipeline"));
        }
        let numbers = values
            .into_iter()
            .map(|value| number(value).ok_or(StoreError::UnexpectedReply("a counter")))
            .collect::<Result<_, _>>()?;
        Ok(Replies { numbers })
    }
}

/// A counter's value: an integer reply, a decimal string (`GET`), or 0 for a missing key.
fn number(value: Value) -> Option<u64> {
    match value {
        Value::Int(n) => u64::try_from(n).ok(),
        Value::Nil => Some(0),
        Value::BulkString(bytes) => std::str::from_utf8(&bytes).ok()?.parse().ok(),
        Value::SimpleString(text) => text.parse().ok(),
        _ => None,
    }
}

/// A batch's replies, by [`Reply`].
#[derive(Debug, Default)]
pub struct Replies {
    numbers: Vec<u64>,
}

impl Replies {
    /// Replies made elsewhere (a store simulated in tests), in the order of the batch's replies.
    pub fn from_numbers(numbers: Vec<u64>) -> Self {
        Self { numbers }
    }

    /// The reply at `at`.
    pub fn get(&self, at: Reply) -> u64 {
        self.numbers.get(at.0).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_read_as_counts() {
        assert_eq!(number(Value::Int(7)), Some(7));
        assert_eq!(number(Value::Nil), Some(0));
        assert_eq!(number(Value::BulkString(b"42".to_vec())), Some(42));
        assert_eq!(number(Value::Int(-1)), None);
        assert_eq!(number(Value::BulkString(b"x".to_vec())), None);
    }

    #[test]
    fn only_kept_replies_count_and_every_command_is_counted() {
        let mut batch = Batch::new();
        let a = batch.add("a", 3);
        batch.expire("a", 1000);
        let b = batch.add("b", 0);
        let fleet = batch.heartbeat("g", "m", 10, 5);
        assert_eq!(batch.command_count(), 6);
        assert_eq!(batch.commands().len(), 4);
        let replies = batch
            .replies(vec![Value::Int(3), Value::Nil, Value::Int(2)])
            .unwrap();
        assert_eq!(
            (replies.get(a), replies.get(b), replies.get(fleet)),
            (3, 0, 2)
        );
        assert!(batch.replies(vec![Value::Int(3)]).is_err());
    }
}
