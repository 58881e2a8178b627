//! The server's entry points: [`serve`] on a connected stream, [`serve_from_env`] on the
//! socket the registry names, and [`run_driver_executable`], the whole `main` of a driver
//! executable, with the reading of its parameters.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use storagedriver::error::Message;
use storagedriver::{DriverFactory, Error, Parameters, Result, Retry, StorageDriver};
use tokio::io::{AsyncRead, AsyncWrite};
use tracing::Instrument;

use super::connection::serve_inner;
use crate::{PARAMETERS_ENV, SOCKET_ENV};

/// Serves `driver` over `stream` until the client closes it.
///
/// Requests run concurrently, each in its own task; `PING` is answered at once even while
/// they run. On end of file everything still running is abandoned and the result is `Ok`.
///
/// # Errors
///
/// A protocol error (a malformed or oversized frame, a version mismatch, a frame that breaks
/// the rules): the server sends `FATAL`, closes the connection and returns an
/// [`Error::Backend`] naming the driver. It never panics on what the client sends.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> storagedriver::Result<()> {
/// use std::sync::Arc;
/// use driver_inmemory::InMemoryDriver;
/// use storagedriver::StorageDriver;
/// use storagedriver_ipc::{serve, IpcDriver};
///
/// let (server_side, client_side) = tokio::net::UnixStream::pair().unwrap();
/// let server = tokio::spawn(serve(Arc::new(InMemoryDriver::new()), server_side));
/// let client = IpcDriver::connect("inmemory", client_side).await?;
/// assert!(client.stat("/missing").await.unwrap_err().is_not_found());
/// drop(client);
/// server.await.unwrap()?; // the client went away: Ok
/// # Ok(()) }
/// ```
pub async fn serve<S>(driver: Arc<dyn StorageDriver>, stream: S) -> Result<()>
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let span = tracing::info_span!("ipc_serve", driver = %driver.name());
    serve_inner(driver, stream).instrument(span).await
}

/// Connects to the Unix socket named by [`SOCKET_ENV`] and serves `driver` on it.
///
/// # Errors
///
/// The variable is unset or the socket cannot be reached, or as [`serve`].
pub async fn serve_from_env(driver: Arc<dyn StorageDriver>) -> Result<()> {
    let name = driver.name().to_owned();
    let fail =
        |message: String| Error::backend(&name, "connect", None, Retry::Useless, Message(message));
    let Some(socket) = std::env::var_os(SOCKET_ENV) else {
        return Err(fail(format!(
            "{SOCKET_ENV} is not set: a driver server is started by the registry, which names its socket there"
        )));
    };
    let stream = tokio::net::UnixStream::connect(&socket)
        .await
        .map_err(|e| {
            fail(format!(
                "cannot connect to {}: {e}",
                socket.to_string_lossy()
            ))
        })?;
    serve(driver, stream).await
}

/// The whole `main` of a driver executable `registry-storage-<name>`.
///
/// Reads the parameters, a JSON object, from argument 1 or the environment variable
/// [`PARAMETERS_ENV`] (neither: no parameters; both: an error), creates the
/// driver with `factory` (an error is printed to stderr and the exit code is 2, without
/// connecting), then serves it on the socket named by [`SOCKET_ENV`] on a tokio runtime.
/// Returns 0 when the client went away, 1 on a protocol or connection error.
///
/// ```no_run
/// // src/bin/registry-storage-inmemory.rs
/// # mod driver_inmemory { #[derive(Debug)] pub struct InMemoryFactory; #[async_trait::async_trait] impl storagedriver::DriverFactory for InMemoryFactory { fn name(&self) -> &str { "inmemory" } async fn create(&self, _: &storagedriver::Parameters) -> storagedriver::Result<std::sync::Arc<dyn storagedriver::StorageDriver>> { unimplemented!() } } }
/// fn main() -> std::process::ExitCode {
///     storagedriver_ipc::run_driver_executable(&driver_inmemory::InMemoryFactory)
/// }
/// ```
pub fn run_driver_executable(factory: &dyn DriverFactory) -> ExitCode {
    let program = format!("registry-storage-{}", factory.name());
    let parameters =
        match read_parameters(std::env::args_os().nth(1), std::env::var_os(PARAMETERS_ENV)) {
            Ok(parameters) => parameters,
            Err(message) => {
                eprintln!("{program}: {message}");
                return ExitCode::from(2);
            }
        };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{program}: cannot start a tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(async {
        let driver = match factory.create(&parameters).await {
            Ok(d) => d,
            Err(e) => {
                eprintln!("{program}: {e}");
                return ExitCode::from(2);
            }
        };
        // Served from a worker thread, which polls the socket itself, rather than from this
        // thread, which a worker would have to wake for every frame.
        match tokio::spawn(serve_from_env(driver)).await {
            Ok(Ok(())) => ExitCode::SUCCESS,
            Ok(Err(e)) => {
                eprintln!("{program}: {e}");
                ExitCode::FAILURE
            }
            Err(e) => {
                eprintln!("{program}: serving failed: {e}");
                ExitCode::FAILURE
            }
        }
    });
    runtime.shutdown_timeout(Duration::from_secs(1));
    code
}

/// The parameters from argument 1 or from [`PARAMETERS_ENV`], or why they are unusable.
fn read_parameters(
    argument: Option<std::ffi::OsString>,
    environment: Option<std::ffi::OsString>,
) -> Result<Parameters, String> {
    let (text, source) = match (argument, environment) {
        (Some(_), Some(_)) => {
            return Err(format!(
                "parameters given both in argument 1 and in {PARAMETERS_ENV}: give them once"
            ));
        }
        (Some(arg), None) => (arg, "argument 1"),
        (None, Some(env)) => (env, PARAMETERS_ENV),
        (None, None) => return Ok(Parameters::new()),
    };
    let Some(text) = text.to_str() else {
        return Err(format!("{source} (the parameters) is not UTF-8"));
    };
    if text.trim().is_empty() {
        return Ok(Parameters::new());
    }
    serde_json::from_str::<Parameters>(text)
        .map_err(|e| format!("{source} must be a JSON object of parameters: {e}"))
}

#[cfg(test)]
mod parameter_tests {
    use super::*;

    #[test]
    fn parameters_come_from_one_place() {
        let json = || Some(std::ffi::OsString::from(r#"{"rootdirectory":"/srv"}"#));
        for (arg, env) in [(json(), None), (None, json())] {
            let params = read_parameters(arg, env).expect("parameters");
            assert_eq!(params["rootdirectory"], "/srv");
        }
        assert!(read_parameters(None, None).expect("none").is_empty());
        let err = read_parameters(json(), json()).expect_err("both");
        assert!(err.contains("give them once"), "{err}");
        let err = read_parameters(None, Some("[1]".into())).expect_err("not an object");
        assert!(err.starts_with(PARAMETERS_ENV), "{err}");
    }
}
