import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { Account, useSession } from './account';
import { JobsPage } from './jobs';
import { LabsPage } from './labs';
import { ProjectPage, ProjectsPage } from './project';
import { FederationPage } from './federation';
import { SearchPage } from './search';
import './style.css';

type Theme = 'light' | 'dark';

function initialTheme(): Theme {
  const saved = localStorage.getItem('orrery-theme');
  if (saved === 'light' || saved === 'dark') return saved;
  return matchMedia('(prefers-color-scheme: dark)').matches ? 'dark' : 'light';
}

type Route = { page: 'search' } | { page: 'federation' } | { page: 'labs' } | { page: 'jobs' } | { page: 'projects' } | { page: 'project'; id: string };

function route(): Route {
  const h = location.hash;
  if (h.startsWith('#/federation')) return { page: 'federation' };
  if (h.startsWith('#/labs')) return { page: 'labs' };
  if (h.startsWith('#/jobs')) return { page: 'jobs' };
  const project = /^#\/projects\/([^/?]+)/.exec(h);
  if (project) return { page: 'project', id: decodeURIComponent(project[1]) };
  if (h.startsWith('#/projects')) return { page: 'projects' };
  return { page: 'search' };
}

function App() {
  const [theme, setTheme] = useState<Theme>(initialTheme);
  const [at, setAt] = useState<Route>(route);
  const page = at.page === 'project' ? 'projects' : at.page;
  const [session, reloadSession] = useSession();
  useEffect(() => {
    const onHash = () => setAt(route());
    addEventListener('hashchange', onHash);
    return () => removeEventListener('hashchange', onHash);
  }, []);
  useEffect(() => {
    document.documentElement.dataset.theme = theme;
    localStorage.setItem('orrery-theme', theme);
  }, [theme]);
  return (
    <>
      <a class="skip" href="#main">Skip to content</a>
      <header class="top">
        <span class="brand">Orrery</span>
        <nav aria-label="Main">
          <a href="#/search" aria-current={page === 'search' ? 'page' : undefined}>Search</a>
          <a href="#/projects" aria-current={page === 'projects' ? 'page' : undefined}>Projects</a>
          <a href="#/federation" aria-current={page === 'federation' ? 'page' : undefined}>Federation</a>
          <a href="#/labs" aria-current={page === 'labs' ? 'page' : undefined}>Labs</a>
          <a href="#/jobs" aria-current={page === 'jobs' ? 'page' : undefined}>Jobs</a>
        </nav>
        <Account state={session} reload={reloadSession} />
        <button
          type="button"
          class="theme"
          aria-label={theme === 'dark' ? 'Use the light theme' : 'Use the dark theme'}
          onClick={() => setTheme(theme === 'dark' ? 'light' : 'dark')}
        >
          {theme === 'dark' ? 'Light' : 'Dark'}
        </button>
      </header>
      <main id="main">
        {at.page === 'search' && <SearchPage />}
        {at.page === 'projects' && <ProjectsPage />}
        {at.page === 'project' && <ProjectPage id={at.id} key={at.id} />}
        {page === 'federation' && <FederationPage />}
        {page === 'labs' && <LabsPage session={session} />}
        {page === 'jobs' && <JobsPage />}
      </main>
    </>
  );
}

const root = document.getElementById('app');
if (root) render(<App />, root);
