//! A bounded two-stage pipeline: one thread produces items (reads and decodes images) while the
//! caller consumes them (runs the network), at most `depth` items ahead, so reading overlaps
//! inference and memory stays bounded.

use crate::error::{Error, Result};
use std::sync::mpsc::sync_channel;

/// Runs `produce` on a thread of its own until it returns `Ok(None)`, handing each item to
/// `consume` on the calling thread in order, with at most `depth` items waiting between them.
///
/// The first error of either side stops both and is returned; when the consumer fails, the
/// producer stops at its next item.
pub fn pipelined<T: Send>(
    depth: usize,
    mut produce: impl FnMut() -> Result<Option<T>> + Send,
    mut consume: impl FnMut(T) -> Result<()>,
) -> Result<()> {
    let (tx, rx) = sync_channel::<Result<T>>(depth.max(1));
    std::thread::scope(|scope| {
        let producer = scope.spawn(move || {
            loop {
                let next = produce();
                let stop = !matches!(next, Ok(Some(_)));
                let sent = match next {
                    Ok(Some(item)) => tx.send(Ok(item)),
                    Ok(None) => break,
                    Err(e) => tx.send(Err(e)),
                };
                // A closed channel means the consumer has stopped: nothing more is wanted.
                if stop || sent.is_err() {
                    break;
                }
            }
        });
        let mut outcome = Ok(());
        for item in rx.iter() {
            if let Err(e) = item.and_then(&mut consume) {
                outcome = Err(e);
                break;
            }
        }
        // Closing the receiving end releases a producer blocked on a full channel.
        drop(rx);
        if producer.join().is_err() {
            outcome = outcome.and(Err(Error::InvalidArgument(
                "the reading thread panicked".into(),
            )));
        }
        outcome
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_arrive_in_order_and_errors_stop_both_sides() {
        let mut next = 0;
        let mut seen = Vec::new();
        pipelined(
            2,
            || {
                next += 1;
                Ok((next <= 50).then_some(next))
            },
            |i| {
                seen.push(i);
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(seen, (1..=50).collect::<Vec<_>>());

        let mut produced = 0;
        let r = pipelined(
            1,
            || {
                produced += 1;
                Ok(Some(produced))
            },
            |i| {
                if i == 3 {
                    Err(Error::InvalidArgument("stop".into()))
                } else {
                    Ok(())
                }
            },
        );
        assert!(r.is_err());
        assert!(
            produced < 10,
            "the producer went on after the consumer stopped"
        );

        let r = pipelined(
            1,
            || Err::<Option<u8>, _>(Error::InvalidArgument("unreadable".into())),
            |_| Ok(()),
        );
        assert!(r.unwrap_err().to_string().contains("unreadable"));
    }
}
