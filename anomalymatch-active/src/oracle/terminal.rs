//! An interactive oracle: a person answers one key per candidate in a terminal.

use anomalymatch_core::{
    Answer, Candidate, Error, Label, Oracle, OracleOutcome, Result, printable,
};
use std::io::{BufRead, Write};

/// Shows rank, file name, score and path of each candidate and reads one key:
/// `a` anomaly, `n` normal, `s` (or empty) skip, `r` remember (then asks again), `q` quit.
///
/// Generic over its input and output so that it can be driven by a test or a pipe.
pub struct TerminalOracle<R, W> {
    input: R,
    output: W,
}

impl TerminalOracle<std::io::StdinLock<'static>, std::io::Stdout> {
    /// An oracle on this process's standard input and output.
    pub fn stdio() -> Self {
        TerminalOracle {
            input: std::io::stdin().lock(),
            output: std::io::stdout(),
        }
    }
}

impl<R: BufRead, W: Write> TerminalOracle<R, W> {
    /// An oracle reading answers from `input` and writing prompts to `output`.
    pub fn new(input: R, output: W) -> Self {
        TerminalOracle { input, output }
    }

    fn ask(&mut self, c: &Candidate) -> Result<String> {
        let path = c
            .path
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        write!(
            self.output,
            "#{:<4} {:<40} score {:.4}  {}\n  [a]nomaly [n]ormal [s]kip [r]emember [q]uit > ",
            c.rank + 1,
            printable(&c.name),
            c.score,
            printable(&path)
        )
        .and_then(|_| self.output.flush())
        .map_err(|e| Error::io("<terminal>", e))?;
        let mut line = String::new();
        let read = self
            .input
            .read_line(&mut line)
            .map_err(|e| Error::io("<terminal>", e))?;
        if read == 0 {
            // End of input: treat as quit so nothing is guessed.
            return Ok("q".into());
        }
        Ok(line.trim().to_ascii_lowercase())
    }
}

impl<R: BufRead, W: Write> Oracle for TerminalOracle<R, W> {
    fn label(
        &mut self,
        candidates: &[Candidate],
        record: &mut dyn FnMut(Answer) -> Result<()>,
    ) -> Result<OracleOutcome> {
        for c in candidates {
            loop {
                let key = self.ask(c)?;
                match key.as_str() {
                    "a" => record(Answer::Label {
                        rank: c.rank,
                        label: Label::Anomaly,
                    })?,
                    "n" => record(Answer::Label {
                        rank: c.rank,
                        label: Label::Normal,
                    })?,
                    "s" | "" => {}
                    "r" => {
                        record(Answer::Remember { rank: c.rank })?;
                        continue;
                    }
                    "q" => return Ok(OracleOutcome::Quit),
                    _ => {
                        let _ = writeln!(self.output, "  unknown key {key:?}");
                        continue;
                    }
                }
                break;
            }
        }
        Ok(OracleOutcome::Done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cands(n: usize) -> Vec<Candidate> {
        (0..n)
            .map(|i| Candidate {
                rank: i,
                name: format!("img{i}.png"),
                score: 0.9,
                path: None,
            })
            .collect()
    }

    #[test]
    fn keys_map_to_answers_and_quit_stops() {
        let keys = "a\nx\nr\nn\n\nq\na\n";
        let mut out = Vec::new();
        let mut o = TerminalOracle::new(keys.as_bytes(), &mut out);
        let mut answers = Vec::new();
        let outcome = o
            .label(&cands(5), &mut |a| {
                answers.push(a);
                Ok(())
            })
            .unwrap();
        assert_eq!(outcome, OracleOutcome::Quit);
        assert_eq!(
            answers,
            [
                Answer::Label {
                    rank: 0,
                    label: Label::Anomaly
                },
                Answer::Remember { rank: 1 },
                Answer::Label {
                    rank: 1,
                    label: Label::Normal
                },
            ]
        );
        let shown = String::from_utf8(out).unwrap();
        assert!(shown.contains("img0.png") && shown.contains("unknown key \"x\""));
    }

    #[test]
    fn end_of_input_quits() {
        let mut o = TerminalOracle::new("".as_bytes(), Vec::new());
        assert_eq!(
            o.label(&cands(2), &mut |_| Ok(())).unwrap(),
            OracleOutcome::Quit
        );
    }
}
