//! Service tests against fake models that record every batch they see.

use std::future::Future;
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll, Wake, Waker};

use super::*;
use crate::{EmbedError, Reranker, Result, TextEmbedder};

/// One call the fake model saw: the task and the texts.
type Call = (Option<String>, Vec<String>);

/// A fake embedder: a text's tokens are its words (plus one for a task); its vector is
/// `[words, first byte, task length]`, so every result can be checked against its input.
#[derive(Default)]
struct Fake {
    calls: Mutex<Vec<Call>>,
    /// While set, the model blocks after telling `entered`, so tests can fill the queue.
    gate: Mutex<bool>,
    opened: Condvar,
    entered: Mutex<Option<mpsc::Sender<()>>>,
}

fn tokens(text: &str, task: Option<&str>) -> usize {
    text.split_whitespace().count() + usize::from(task.is_some())
}

fn expected(text: &str, task: Option<&str>) -> Vec<f32> {
    vec![
        text.split_whitespace().count() as f32,
        f32::from(text.bytes().next().unwrap_or(0)),
        task.map_or(0.0, |t| t.len() as f32),
    ]
}

impl Fake {
    /// Closes the gate; returns a receiver told each time the model is entered.
    fn close(&self) -> mpsc::Receiver<()> {
        let (tx, rx) = mpsc::channel();
        *self.entered.lock().unwrap() = Some(tx);
        *self.gate.lock().unwrap() = true;
        rx
    }

    fn open(&self) {
        *self.gate.lock().unwrap() = false;
        self.opened.notify_all();
    }

    fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }
}

impl TextEmbedder for Fake {
    fn width(&self) -> usize {
        3
    }

    fn count_tokens(&self, text: &str, task: Option<&str>) -> Result<usize> {
        if text == "untokenizable" {
            return Err(EmbedError::Tokenizer("bad text".into()));
        }
        Ok(tokens(text, task))
    }

    fn token_spans(&self, text: &str) -> Result<Vec<(usize, usize)>> {
        Ok(text
            .split(' ')
            .scan(0, |at, w| {
                let span = (*at, *at + w.len());
                *at += w.len() + 1;
                Some(span)
            })
            .collect())
    }

    fn text_capacity(&self) -> usize {
        512
    }

    fn embed(&self, texts: &[&str], task: Option<&str>) -> Result<Vec<Vec<f32>>> {
        let call = (
            task.map(String::from),
            texts.iter().map(|t| t.to_string()).collect(),
        );
        self.calls.lock().unwrap().push(call);
        if let Some(tx) = self.entered.lock().unwrap().as_ref() {
            let _ = tx.send(());
        }
        let mut closed = self.gate.lock().unwrap();
        while *closed {
            closed = self.opened.wait(closed).unwrap();
        }
        drop(closed);
        if texts.contains(&"panic") {
            panic!("fake model panics on request");
        }
        if texts.contains(&"poison") {
            return Err(EmbedError::InvalidInput("poison text".into()));
        }
        Ok(texts.iter().map(|t| expected(t, task)).collect())
    }
}

fn config(budget: usize, queue: usize) -> ServiceConfig {
    ServiceConfig {
        model_name: "fake".into(),
        max_batch_tokens: budget,
        max_batch_items: 64,
        max_queued_items: queue,
        cache_entries: 16,
        threads: 1,
    }
}

fn service(budget: usize, queue: usize) -> (Arc<Fake>, EmbedService) {
    let fake = Arc::new(Fake::default());
    let service = EmbedService::new(fake.clone(), config(budget, queue)).unwrap();
    (fake, service)
}

#[test]
fn results_come_back_in_order_for_the_right_caller() {
    let (_, service) = service(1000, 100);
    let texts = ["one", "two words", "three little words", "x"];
    let out = service
        .embed(&texts, Some("search"), Priority::Bulk)
        .unwrap();
    let want: Vec<Vec<f32>> = texts.iter().map(|t| expected(t, Some("search"))).collect();
    assert_eq!(out, want);
    assert!(service
        .embed(&[], None, Priority::Query)
        .unwrap()
        .is_empty());
    assert_eq!(service.width(), 3);
}

#[test]
fn queries_run_before_bulk_and_tasks_never_mix() {
    let (fake, service) = service(1000, 100);
    let entered = fake.close();
    let blocker = service.submit(&["blocker"], None, Priority::Bulk).unwrap();
    entered.recv().unwrap(); // the worker is inside the model; the rest must queue
    let bulk = service
        .submit(&["b1", "b2 b2"], None, Priority::Bulk)
        .unwrap();
    let q1 = service
        .submit(&["q1"], Some("t1"), Priority::Query)
        .unwrap();
    let q2 = service
        .submit(&["q2"], Some("t2"), Priority::Query)
        .unwrap();
    let q3 = service
        .submit(&["q3 q3"], Some("t1"), Priority::Query)
        .unwrap();
    assert_eq!(service.queued(), 5);
    fake.open();
    for (pending, text, task) in [(q1, "q1", Some("t1")), (q2, "q2", Some("t2"))] {
        assert_eq!(pending.wait().unwrap(), vec![expected(text, task)]);
    }
    assert_eq!(q3.wait().unwrap(), vec![expected("q3 q3", Some("t1"))]);
    assert_eq!(bulk.wait().unwrap().len(), 2);
    assert_eq!(blocker.wait().unwrap().len(), 1);
    let calls = fake.calls();
    let s = |v: &[&str]| v.iter().map(|t| t.to_string()).collect::<Vec<_>>();
    assert_eq!(
        calls,
        vec![
            (None, s(&["blocker"])),
            (Some("t1".into()), s(&["q1", "q3 q3"])),
            (Some("t2".into()), s(&["q2"])),
            (None, s(&["b1", "b2 b2"])),
        ]
    );
}

#[test]
fn batches_respect_the_token_budget_and_are_length_sorted() {
    let (fake, service) = service(12, 1000);
    let entered = fake.close();
    let blocker = service.submit(&["blocker"], None, Priority::Bulk).unwrap();
    entered.recv().unwrap();
    let texts: Vec<String> = (0..40)
        .map(|i| vec!["w"; 1 + (i * 7) % 9].join(" "))
        .collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let pending = service.submit(&refs, None, Priority::Bulk).unwrap();
    fake.open();
    let out = pending.wait().unwrap();
    blocker.wait().unwrap();
    let want: Vec<Vec<f32>> = refs.iter().map(|t| expected(t, None)).collect();
    assert_eq!(out, want);
    let calls = fake.calls();
    assert!(calls.len() > 4, "{} batches", calls.len());
    let mut seen = 0;
    for (_, batch) in &calls[1..] {
        let lens: Vec<usize> = batch.iter().map(|t| tokens(t, None)).collect();
        let padded = lens.len() * lens.iter().max().unwrap();
        assert!(padded <= 12, "batch {lens:?} over budget");
        assert!(lens.windows(2).all(|w| w[0] <= w[1]), "unsorted {lens:?}");
        seen += batch.len();
    }
    assert_eq!(seen, 40);
}

#[test]
fn repeated_queries_come_from_the_cache() {
    let (fake, service) = service(1000, 100);
    let a = service
        .embed(&["hello world", "other"], Some("t"), Priority::Query)
        .unwrap();
    assert_eq!(fake.calls().len(), 1);
    assert_eq!(service.cached(), 2);
    let b = service
        .embed(&["other", "hello world"], Some("t"), Priority::Query)
        .unwrap();
    assert_eq!((b[0].clone(), b[1].clone()), (a[1].clone(), a[0].clone()));
    assert_eq!(fake.calls().len(), 1, "cache hit ran the model");
    // Only the miss runs; a different task or bulk priority is not served from the cache.
    service
        .embed(&["hello world", "new"], Some("t"), Priority::Query)
        .unwrap();
    assert_eq!(fake.calls()[1].1, vec!["new".to_string()]);
    service
        .embed(&["hello world"], Some("u"), Priority::Query)
        .unwrap();
    service
        .embed(&["hello world"], Some("t"), Priority::Bulk)
        .unwrap();
    assert_eq!(fake.calls().len(), 4);
}

#[test]
fn a_full_queue_is_refused_at_once() {
    let (fake, service) = service(1000, 4);
    let entered = fake.close();
    let blocker = service.submit(&["blocker"], None, Priority::Bulk).unwrap();
    entered.recv().unwrap();
    let held = service
        .submit(&["a", "b", "c"], None, Priority::Bulk)
        .unwrap();
    let err = service
        .submit(&["d", "e"], None, Priority::Query)
        .unwrap_err();
    assert!(
        matches!(&err, EmbedError::Overloaded { model, pending: 3 } if model == "fake"),
        "{err:?}"
    );
    let too_big = service.submit(&["1", "2", "3", "4", "5"], None, Priority::Bulk);
    assert!(matches!(too_big, Err(EmbedError::InvalidInput(_))));
    let last = service.submit(&["d"], None, Priority::Bulk).unwrap();
    // A withdrawn request frees its places.
    drop(held);
    let after = service.submit(&["e", "f"], None, Priority::Bulk).unwrap();
    fake.open();
    assert_eq!(last.wait().unwrap(), vec![expected("d", None)]);
    assert_eq!(after.wait().unwrap().len(), 2);
    blocker.wait().unwrap();
    assert!(fake
        .calls()
        .iter()
        .all(|(_, texts)| !texts.contains(&"a".to_string())));
}

#[test]
fn one_callers_failure_does_not_fail_another() {
    let (fake, service) = service(1000, 100);
    let entered = fake.close();
    let blocker = service.submit(&["blocker"], None, Priority::Bulk).unwrap();
    entered.recv().unwrap();
    let bad = service
        .submit(&["fine", "poison"], None, Priority::Bulk)
        .unwrap();
    let good = service.submit(&["good"], None, Priority::Bulk).unwrap();
    let panics = service
        .submit(&["panic"], Some("p"), Priority::Bulk)
        .unwrap();
    fake.open();
    assert!(matches!(bad.wait(), Err(EmbedError::InvalidInput(_))));
    assert_eq!(good.wait().unwrap(), vec![expected("good", None)]);
    assert!(matches!(panics.wait(), Err(EmbedError::Inference(_))));
    blocker.wait().unwrap();
    // The worker survived the panic.
    assert_eq!(
        service
            .embed(&["after"], None, Priority::Query)
            .unwrap()
            .len(),
        1
    );
    let tok = service.submit(&["untokenizable"], None, Priority::Query);
    assert!(matches!(tok, Err(EmbedError::Tokenizer(_))));
}

#[test]
fn many_concurrent_callers_each_get_their_own_vectors() {
    let (fake, service) = service(64, 10_000);
    let service = Arc::new(service);
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let service = Arc::clone(&service);
            std::thread::spawn(move || {
                for r in 0..25 {
                    let texts: Vec<String> = (0..1 + (t + r) % 5)
                        .map(|i| {
                            format!(
                                "{} {}",
                                (b'a' + ((t * 7 + r + i) % 26) as u8) as char,
                                "w ".repeat(i)
                            )
                        })
                        .collect();
                    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
                    let task = ["x", "yy"][t % 2];
                    let priority = [Priority::Query, Priority::Bulk][(t / 2) % 2];
                    let out = service.embed(&refs, Some(task), priority).unwrap();
                    let want: Vec<Vec<f32>> =
                        refs.iter().map(|s| expected(s, Some(task))).collect();
                    assert_eq!(out, want);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    for (task, _) in fake.calls() {
        assert!(matches!(task.as_deref(), Some("x" | "yy")));
    }
}

struct ThreadWaker(std::thread::Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// Minimal executor: polls the future, parking the thread between wake-ups.
fn block_on<F: Future + Unpin>(mut future: F) -> F::Output {
    let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(out) = std::pin::Pin::new(&mut future).poll(&mut cx) {
            return out;
        }
        std::thread::park();
    }
}

#[test]
fn pending_can_be_awaited() {
    let (fake, service) = service(1000, 100);
    let entered = fake.close();
    let mut pending = service
        .submit(&["async text"], Some("t"), Priority::Query)
        .unwrap();
    entered.recv().unwrap();
    assert!(pending.try_take().is_none());
    let opener = std::thread::spawn({
        let fake = fake.clone();
        move || fake.open()
    });
    assert_eq!(
        block_on(pending).unwrap(),
        vec![expected("async text", Some("t"))]
    );
    opener.join().unwrap();
}

/// A fake reranker scoring a document by its length relative to the query's.
#[derive(Default)]
struct FakeReranker {
    calls: Mutex<Vec<(String, usize)>>,
}

impl Reranker for FakeReranker {
    fn count_tokens(&self, query: &str, doc: &str, _: Option<&str>) -> Result<usize> {
        Ok(query.len() + doc.len())
    }

    fn score(&self, query: &str, docs: &[&str], _: Option<&str>) -> Result<Vec<f32>> {
        self.calls
            .lock()
            .unwrap()
            .push((query.to_string(), docs.len()));
        Ok(docs
            .iter()
            .map(|d| d.len() as f32 / (d.len() + query.len()) as f32)
            .collect())
    }
}

#[test]
fn rerank_scores_map_back_to_their_documents() {
    let fake = Arc::new(FakeReranker::default());
    let service = Arc::new(RerankService::new(fake.clone(), config(1000, 100)).unwrap());
    let threads: Vec<_> = ["q", "query two"]
        .into_iter()
        .map(|query| {
            let service = Arc::clone(&service);
            std::thread::spawn(move || {
                let docs = ["a", "bbbb", "cc", "dddddddd"];
                let scores = service.score(query, &docs, None).unwrap();
                let want: Vec<f32> = docs
                    .iter()
                    .map(|d| d.len() as f32 / (d.len() + query.len()) as f32)
                    .collect();
                assert_eq!(scores, want);
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let calls = fake.calls.lock().unwrap().clone();
    assert_eq!(calls.iter().map(|(_, n)| n).sum::<usize>(), 8);
    assert!(service.score("q", &[], None).unwrap().is_empty());
}
